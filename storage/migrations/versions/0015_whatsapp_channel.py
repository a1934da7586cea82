"""whatsapp channel

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 15:22:59.924431
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "whatsapp_menus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_menus")),
    )
    with op.batch_alter_table("whatsapp_menus", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_whatsapp_menus_chat_id"), ["chat_id"], unique=False)

    op.create_table(
        "link_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_link_codes_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_link_codes")),
    )
    with op.batch_alter_table("link_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_codes_person_id"), ["person_id"], unique=False)

    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("receipt", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("template", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_outbox_held",
            ["channel", "chat_id"],
            unique=False,
            postgresql_where=sa.text("template IS NOT NULL AND opened_at IS NULL"),
            sqlite_where=sa.text("template IS NOT NULL AND opened_at IS NULL"),
        )
        batch_op.create_index(
            "uq_outbox_provider_id",
            ["provider_id"],
            unique=True,
            postgresql_where=sa.text("provider_id IS NOT NULL"),
            sqlite_where=sa.text("provider_id IS NOT NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_outbox_provider_id",
            postgresql_where=sa.text("provider_id IS NOT NULL"),
            sqlite_where=sa.text("provider_id IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_outbox_held",
            postgresql_where=sa.text("template IS NOT NULL AND opened_at IS NULL"),
            sqlite_where=sa.text("template IS NOT NULL AND opened_at IS NULL"),
        )
        batch_op.drop_column("opened_at")
        batch_op.drop_column("template")
        batch_op.drop_column("receipt")
        batch_op.drop_column("provider_id")

    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_column("last_inbound_at")

    with op.batch_alter_table("link_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_codes_person_id"))

    op.drop_table("link_codes")
    with op.batch_alter_table("whatsapp_menus", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_whatsapp_menus_chat_id"))

    op.drop_table("whatsapp_menus")
