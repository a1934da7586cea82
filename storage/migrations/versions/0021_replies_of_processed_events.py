"""what a processed event answered, kept for a while: an event delivered again after a crash
is answered again, not handled again

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-22 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("replies", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_column("replies")
        batch_op.drop_column("chat_id")
