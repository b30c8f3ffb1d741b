"""fair bulk dispatch: a partial index of batch items waiting for a message

Batch items are now created without a message (enqueued_at NULL) and sent a few per client at a time
by db/dispatch.py, which looks them up per client, oldest first, on every bulk task end. (Its count of
items in flight uses ix_jobs_status_enqueued.)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_jobs_bulk_undispatched', 'jobs', ['client_id', 'created_at', 'batch_index'], unique=False,
                    postgresql_where=sa.text("status = 'queued' AND batch_id IS NOT NULL AND enqueued_at IS NULL"))


def downgrade() -> None:
    op.drop_index('ix_jobs_bulk_undispatched', table_name='jobs')
