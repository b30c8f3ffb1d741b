"""jobs.start_webhook_state: the job.started webhook is tracked like the terminal one, so the sweeper can
re-send it when its message was lost

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

WEBHOOK_STATE = postgresql.ENUM('none', 'pending', 'delivered', 'failed', 'gone', name='webhook_state',
                                create_type=False)


def upgrade() -> None:
    # A constant default: Postgres 11+ adds the column without rewriting the table.
    op.add_column('jobs', sa.Column('start_webhook_state', WEBHOOK_STATE, server_default='none', nullable=False))
    op.create_index('ix_jobs_start_webhook_pending', 'jobs', ['started_at'], unique=False,
                    postgresql_where=sa.text("start_webhook_state = 'pending'"))


def downgrade() -> None:
    op.drop_index('ix_jobs_start_webhook_pending', table_name='jobs')
    op.drop_column('jobs', 'start_webhook_state')
