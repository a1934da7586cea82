"""outbox without foreign keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 12:05:38.848813
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_outbox_idempotency_key"), type_="unique")
        batch_op.create_index(
            "uq_outbox_idempotency_key",
            ["idempotency_key"],
            unique=True,
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
        )
        batch_op.drop_constraint(batch_op.f("fk_outbox_person_id_persons"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_outbox_council_id_councils"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_outbox_broadcast_id_broadcasts"), type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_broadcast_id_broadcasts"),
            "broadcasts",
            ["broadcast_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_council_id_councils"),
            "councils",
            ["council_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_person_id_persons"),
            "persons",
            ["person_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_index(
            "uq_outbox_idempotency_key",
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
            sqlite_where=sa.text("idempotency_key IS NOT NULL"),
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_outbox_idempotency_key"), ["idempotency_key"]
        )
