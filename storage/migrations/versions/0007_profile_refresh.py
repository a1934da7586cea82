"""profile refresh

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 11:19:50.979404
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("councils", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("profile_refresh_days", sa.Integer(), nullable=False, server_default="182")
        )
        batch_op.add_column(
            sa.Column("profile_grace_days", sa.Integer(), nullable=False, server_default="30")
        )

    with op.batch_alter_table("talent_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refresh_asked_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("talent_profiles", schema=None) as batch_op:
        batch_op.drop_column("refresh_asked_at")

    with op.batch_alter_table("councils", schema=None) as batch_op:
        batch_op.drop_column("profile_grace_days")
        batch_op.drop_column("profile_refresh_days")
