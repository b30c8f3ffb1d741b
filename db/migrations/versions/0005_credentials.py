"""credentials with rotation: several API keys and webhook secrets per client, and a record of rotations

A client had one key (clients.api_key_prefix/api_key_hash) and one webhook secret (clients.webhook_secret):
changing either broke the very next request or delivery. Keys move to api_keys (several active at once,
last-used time, revocation), secrets to webhook_secrets (each delivery is signed with every secret not yet
expired), and each rotation is a row of credential_events. Existing credentials are copied over.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hash')
    )
    op.create_index(op.f('ix_api_keys_client_id'), 'api_keys', ['client_id'], unique=False)
    op.create_table('webhook_secrets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_webhook_secrets_client_id'), 'webhook_secrets', ['client_id'], unique=False)
    op.create_table('credential_events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_credential_events_client_id'), 'credential_events', ['client_id'], unique=False)
    op.execute("INSERT INTO api_keys (id, client_id, prefix, hash, created_at) "
               "SELECT gen_random_uuid(), id, api_key_prefix, api_key_hash, created_at FROM clients")
    op.execute("INSERT INTO webhook_secrets (id, client_id, secret, created_at) "
               "SELECT gen_random_uuid(), id, webhook_secret, created_at FROM clients")
    op.drop_index(op.f('ix_clients_api_key_prefix'), table_name='clients')
    op.drop_constraint('clients_api_key_hash_key', 'clients', type_='unique')
    op.drop_column('clients', 'api_key_prefix')
    op.drop_column('clients', 'api_key_hash')
    op.drop_column('clients', 'webhook_secret')


def downgrade() -> None:
    # back to one key and one secret per client: the oldest active of each
    op.add_column('clients', sa.Column('webhook_secret', sa.String(length=100), nullable=True))
    op.add_column('clients', sa.Column('api_key_hash', sa.String(length=64), nullable=True))
    op.add_column('clients', sa.Column('api_key_prefix', sa.String(length=16), nullable=True))
    op.execute("UPDATE clients c SET api_key_prefix = k.prefix, api_key_hash = k.hash FROM ("
               "SELECT DISTINCT ON (client_id) client_id, prefix, hash FROM api_keys WHERE revoked_at IS NULL "
               "ORDER BY client_id, created_at) k WHERE k.client_id = c.id")
    op.execute("UPDATE clients c SET webhook_secret = w.secret FROM ("
               "SELECT DISTINCT ON (client_id) client_id, secret FROM webhook_secrets "
               "ORDER BY client_id, created_at DESC) w WHERE w.client_id = c.id")
    op.execute("UPDATE clients SET active = false, api_key_prefix = 'prt_revoked', "
               "api_key_hash = md5(id::text) || md5(id::text), webhook_secret = '' WHERE api_key_hash IS NULL")
    for col in ('webhook_secret', 'api_key_hash', 'api_key_prefix'):
        op.alter_column('clients', col, nullable=False)
    op.create_unique_constraint('clients_api_key_hash_key', 'clients', ['api_key_hash'])
    op.create_index(op.f('ix_clients_api_key_prefix'), 'clients', ['api_key_prefix'], unique=False)
    op.drop_index(op.f('ix_credential_events_client_id'), table_name='credential_events')
    op.drop_table('credential_events')
    op.drop_index(op.f('ix_webhook_secrets_client_id'), table_name='webhook_secrets')
    op.drop_table('webhook_secrets')
    op.drop_index(op.f('ix_api_keys_client_id'), table_name='api_keys')
    op.drop_table('api_keys')
