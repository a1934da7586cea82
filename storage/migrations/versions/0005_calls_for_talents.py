"""calls for talents

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:46:03.738855
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("holder_chat", sa.String(length=64), nullable=True),
        sa.Column("holder_channel", sa.String(length=16), nullable=True),
        sa.Column("holder_locale", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("skill_ids", sa.JSON(), nullable=False),
        sa.Column("needed_when", sa.String(length=200), nullable=False),
        sa.Column("people_needed", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="callstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("broadcast_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_calls_broadcast_id_broadcasts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["council_id"],
            ["councils.id"],
            name=op.f("fk_calls_council_id_councils"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["persons.id"],
            name=op.f("fk_calls_created_by_persons"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_council_id"), ["council_id"], unique=False)
        batch_op.create_index("ix_calls_status_deadline", ["status", "deadline"], unique=False)

    op.create_table(
        "call_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "answer",
            sa.Enum("yes", "maybe", "no", name="answer", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("message", sa.String(length=300), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_answers_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_call_answers_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_answers")),
        sa.UniqueConstraint("call_id", "person_id", name=op.f("uq_call_answers_call_id_person_id")),
    )
    with op.batch_alter_table("call_answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_answers_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_answers_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("call_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_answers_person_id"))
        batch_op.drop_index(batch_op.f("ix_call_answers_call_id"))

    op.drop_table("call_answers")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_status_deadline")
        batch_op.drop_index(batch_op.f("ix_calls_council_id"))

    op.drop_table("calls")
