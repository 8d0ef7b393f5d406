"""review sampling: answers queued for review without a vote (origin, reasons, uncertainty), the
teacher's draft beside them, what each approval keeps, and the answer's retrieval relevance

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('relevance', sa.Float(), nullable=True))
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='user')
        )
        batch_op.add_column(sa.Column('reasons', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('uncertainty', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('draft', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('draft_model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.add_column(sa.Column('drafted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('draft_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_check_constraint('ck_correction_origin', "origin IN ('user', 'sampled')")
        batch_op.create_index(
            'uq_correction_sampled_answer',
            ['answer_id'],
            unique=True,
            sqlite_where=sa.text("origin = 'sampled'"),
            postgresql_where=sa.text("origin = 'sampled'"),
        )
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('choice', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
        batch_op.create_check_constraint(
            'ck_review_choice', "choice IS NULL OR choice IN ('bot', 'draft', 'edit')"
        )


def downgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_constraint('ck_review_choice', type_='check')
        batch_op.drop_column('choice')
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.drop_index('uq_correction_sampled_answer')
        batch_op.drop_constraint('ck_correction_origin', type_='check')
        for column in ('draft_attempts', 'drafted_at', 'draft_model', 'draft', 'uncertainty', 'reasons', 'origin'):
            batch_op.drop_column(column)
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_column('relevance')
