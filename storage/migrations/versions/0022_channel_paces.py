"""a channel's sending pace, shared by the processes that send

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_paces",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_paces")),
    )


def downgrade() -> None:
    op.drop_table("channel_paces")
