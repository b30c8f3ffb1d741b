"""batches, uploads, idempotency keys, per-client limits, the 'expired' job status

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 14:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

JSONB = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
WEBHOOK_STATE = postgresql.ENUM('none', 'pending', 'delivered', 'failed', 'gone', name='webhook_state',
                                create_type=False)


def upgrade() -> None:
    # A new enum value cannot be used in the transaction that adds it: commit it on its own.
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE job_status ADD VALUE IF NOT EXISTS 'expired'")

    op.add_column('clients', sa.Column('rate_limit_per_s', sa.Float(), nullable=True))
    op.add_column('clients', sa.Column('rate_limit_burst', sa.Integer(), nullable=True))
    op.add_column('clients', sa.Column('max_jobs_in_flight', sa.Integer(), nullable=True))
    op.add_column('clients', sa.Column('retention_s', sa.Integer(), nullable=True))

    op.create_table('batches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('terminal_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('options', JSONB, nullable=False),
    sa.Column('webhook_url', sa.Text(), nullable=True),
    sa.Column('webhook_events_filter', JSONB, nullable=True),
    sa.Column('webhook_state', WEBHOOK_STATE, server_default='none', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_batches_client_created', 'batches', ['client_id', 'created_at', 'id'], unique=False)

    op.add_column('jobs', sa.Column('webhook_events_filter', JSONB, nullable=True))
    op.add_column('jobs', sa.Column('batch_id', sa.Uuid(), nullable=True))
    op.add_column('jobs', sa.Column('batch_index', sa.Integer(), nullable=True))
    op.create_foreign_key('jobs_batch_id_fkey', 'jobs', 'batches', ['batch_id'], ['id'])
    op.create_index('ix_jobs_batch', 'jobs', ['batch_id', 'batch_index'], unique=False)
    op.create_index('ix_jobs_status_finished', 'jobs', ['status', 'finished_at'], unique=False)
    op.create_index('ix_jobs_client_active', 'jobs', ['client_id'], unique=False,
                    postgresql_where=sa.text("status IN ('queued', 'running')"))

    op.create_table('uploads',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('max_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('url_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_uploads_client_id'), 'uploads', ['client_id'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_headers', JSONB, nullable=True),
    sa.Column('response_body', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('locked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('client_id', 'key')
    )
    op.create_index('ix_idempotency_keys_created', 'idempotency_keys', ['created_at'], unique=False)

    op.alter_column('webhook_deliveries', 'job_id', existing_type=sa.Uuid(), nullable=True)
    op.add_column('webhook_deliveries', sa.Column('batch_id', sa.Uuid(), nullable=True))
    op.create_foreign_key('webhook_deliveries_batch_id_fkey', 'webhook_deliveries', 'batches', ['batch_id'], ['id'],
                          ondelete='CASCADE')
    op.create_index(op.f('ix_webhook_deliveries_batch_id'), 'webhook_deliveries', ['batch_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_webhook_deliveries_batch_id'), table_name='webhook_deliveries')
    op.drop_constraint('webhook_deliveries_batch_id_fkey', 'webhook_deliveries', type_='foreignkey')
    op.drop_column('webhook_deliveries', 'batch_id')
    op.execute("DELETE FROM webhook_deliveries WHERE job_id IS NULL")
    op.alter_column('webhook_deliveries', 'job_id', existing_type=sa.Uuid(), nullable=False)
    op.drop_index('ix_idempotency_keys_created', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_index(op.f('ix_uploads_client_id'), table_name='uploads')
    op.drop_table('uploads')
    op.drop_index('ix_jobs_client_active', table_name='jobs')
    op.drop_index('ix_jobs_status_finished', table_name='jobs')
    op.drop_index('ix_jobs_batch', table_name='jobs')
    op.drop_constraint('jobs_batch_id_fkey', 'jobs', type_='foreignkey')
    op.drop_column('jobs', 'batch_index')
    op.drop_column('jobs', 'batch_id')
    op.drop_column('jobs', 'webhook_events_filter')
    op.drop_index('ix_batches_client_created', table_name='batches')
    op.drop_table('batches')
    for col in ('retention_s', 'max_jobs_in_flight', 'rate_limit_burst', 'rate_limit_per_s'):
        op.drop_column('clients', col)
    # Postgres cannot drop an enum value: expired jobs become canceled, then the type is rebuilt.
    op.execute("UPDATE jobs SET status = 'canceled' WHERE status = 'expired'")
    op.execute("ALTER TYPE job_status RENAME TO job_status_old")
    op.execute("CREATE TYPE job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'canceled')")
    op.execute("ALTER TABLE jobs ALTER COLUMN status TYPE job_status USING status::text::job_status")
    op.execute("DROP TYPE job_status_old")
