"""canaries: a candidate adapter serving a share of threads until the votes decide; retrain runs may
end as 'canary' or 'rolled_back'

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('queued', 'running', 'promoted', 'rejected', 'failed', 'skipped')"
NEW = "status IN ('queued', 'running', 'promoted', 'rejected', 'failed', 'skipped', 'canary', 'rolled_back')"


def upgrade() -> None:
    op.create_table(
        'canary',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('candidate', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('live', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('share', sa.Float(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('is_open', sa.Boolean(), nullable=True),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('looks_done', sa.Integer(), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('posted', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'undecided', 'promoted', 'rolled_back', 'stopped')", name='ck_canary_status'
        ),
        sa.CheckConstraint('share > 0 AND share < 1', name='ck_canary_share'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'uq_canary_one_open',
        'canary',
        ['is_open'],
        unique=True,
        sqlite_where=sa.text('is_open'),
        postgresql_where=sa.text('is_open'),
    )
    with op.batch_alter_table('retrainrun', schema=None) as batch_op:
        batch_op.drop_constraint('ck_run_status', type_='check')
        batch_op.create_check_constraint('ck_run_status', NEW)


def downgrade() -> None:
    op.execute("UPDATE retrainrun SET status = 'promoted' WHERE status = 'canary'")
    op.execute("UPDATE retrainrun SET status = 'rejected' WHERE status = 'rolled_back'")
    with op.batch_alter_table('retrainrun', schema=None) as batch_op:
        batch_op.drop_constraint('ck_run_status', type_='check')
        batch_op.create_check_constraint('ck_run_status', OLD)
    op.drop_index('uq_canary_one_open', table_name='canary')
    op.drop_table('canary')
