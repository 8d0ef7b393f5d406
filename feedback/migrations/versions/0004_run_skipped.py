"""retrain runs may end as 'skipped' (nothing new to learn from)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:20:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('queued', 'running', 'promoted', 'rejected', 'failed')"
NEW = "status IN ('queued', 'running', 'promoted', 'rejected', 'failed', 'skipped')"


def upgrade() -> None:
    # batch mode: SQLite cannot alter a CHECK constraint in place, so the table is copied
    with op.batch_alter_table('retrainrun', schema=None) as batch_op:
        batch_op.drop_constraint('ck_run_status', type_='check')
        batch_op.create_check_constraint('ck_run_status', NEW)


def downgrade() -> None:
    op.execute("UPDATE retrainrun SET status = 'rejected' WHERE status = 'skipped'")
    with op.batch_alter_table('retrainrun', schema=None) as batch_op:
        batch_op.drop_constraint('ck_run_status', type_='check')
        batch_op.create_check_constraint('ck_run_status', OLD)
