"""outbox: no index on its recipients, a block-range index on its broadcasts

Messages to someone who stopped or blocked the bot are cancelled by the dispatcher as they
come due, so nothing looks the outbox up by person any more but erasure, which is rare.
A broadcast's rows are written together: on PostgreSQL a BRIN index finds them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 12:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_person_id"))
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_broadcast_status", table_name="outbox")
        op.create_index(
            "ix_outbox_broadcast_status",
            "outbox",
            ["broadcast_id", "status"],
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_broadcast_status", table_name="outbox")
        op.create_index("ix_outbox_broadcast_status", "outbox", ["broadcast_id", "status"])
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_person_id"), ["person_id"], unique=False)
