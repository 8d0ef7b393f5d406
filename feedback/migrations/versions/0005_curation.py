"""curation: answers keep the sources they cited; corrections get review rounds (re-review after a
source changed), the reason they are back, and where their review card is

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sources', sa.JSON(), nullable=False, server_default='[]'))

    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('stale_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(
            sa.Column('card_channel', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
        batch_op.add_column(sa.Column('card_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    # A reviewer may review a correction again in a later round: the unique key gains the round.
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_round', sa.Integer(), nullable=False, server_default='1'))
        batch_op.drop_constraint('uq_review_reviewer', type_='unique')
        batch_op.create_unique_constraint(
            'uq_review_reviewer_round', ['correction_id', 'reviewer', 'review_round']
        )


def downgrade() -> None:
    # Only the latest round's reviews fit the narrower key.
    op.execute(
        "DELETE FROM review WHERE review_round < "
        "(SELECT review_round FROM correction WHERE correction.id = review.correction_id)"
    )
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_constraint('uq_review_reviewer_round', type_='unique')
        batch_op.create_unique_constraint('uq_review_reviewer', ['correction_id', 'reviewer'])
        batch_op.drop_column('review_round')

    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.drop_column('card_ref')
        batch_op.drop_column('card_channel')
        batch_op.drop_column('stale_reason')
        batch_op.drop_column('review_round')

    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_column('sources')
