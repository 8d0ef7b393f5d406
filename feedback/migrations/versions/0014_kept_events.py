"""kept events: questions acknowledged to the platform, kept until a bot replica answered them; bot
replicas and when each was last alive

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 19:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kept_event',
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_kept_event_owner', 'kept_event', ['owner'])
    op.create_index('ix_kept_event_finished_at', 'kept_event', ['finished_at'])
    op.create_table(
        'bot_replica',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('bot_replica')
    op.drop_index('ix_kept_event_finished_at', table_name='kept_event')
    op.drop_index('ix_kept_event_owner', table_name='kept_event')
    op.drop_table('kept_event')
