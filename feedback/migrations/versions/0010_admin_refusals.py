"""admin refusals: refused admin commands and console admin actions, who, where and what

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'adminrefusal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('place', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column('command', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_adminrefusal_created_at', 'adminrefusal', ['created_at'], unique=False)
    op.create_index('ix_adminrefusal_user_created', 'adminrefusal', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_adminrefusal_user_created', table_name='adminrefusal')
    op.drop_index('ix_adminrefusal_created_at', table_name='adminrefusal')
    op.drop_table('adminrefusal')
