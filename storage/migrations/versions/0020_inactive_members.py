"""members inactive for a council-chosen period: when a person was last seen, the warning
given a month before they are erased

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-21 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("councils", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("inactive_months", sa.Integer(), nullable=False, server_default="24")
        )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("inactivity_warned_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("inactivity_warned_at")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
    with op.batch_alter_table("councils", schema=None) as batch_op:
        batch_op.drop_column("inactive_months")
