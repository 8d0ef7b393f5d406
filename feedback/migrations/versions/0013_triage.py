"""triage: whether a 👎 or a correction was a retrieval miss or a generation miss

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "triage IS NULL OR triage IN ('retrieval', 'generation')"


def upgrade() -> None:
    for table in ('vote', 'correction'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('triage', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
            batch_op.create_check_constraint(f'ck_{table}_triage', KINDS)


def downgrade() -> None:
    for table in ('correction', 'vote'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'ck_{table}_triage', type_='check')
            batch_op.drop_column('triage')
