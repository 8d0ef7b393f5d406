"""reviewed answers: the approved correction an answer was served from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewed_correction_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_answer_reviewed_correction_id', ['reviewed_correction_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index('ix_answer_reviewed_correction_id')
        batch_op.drop_column('reviewed_correction_id')
