"""scheduled rows whose work failed, skipped by their job from then on; the parts of a long
outbox message already sent

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-10 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_failures")),
    )
    with op.batch_alter_table("scheduled_failures", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_failures_job_row", ["job", "row_id"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("parts_sent", sa.SmallInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("parts_sent")
    with op.batch_alter_table("scheduled_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_failures_job_row")
    op.drop_table("scheduled_failures")
