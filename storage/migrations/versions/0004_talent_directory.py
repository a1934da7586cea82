"""talent directory

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 10:37:49.717032
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "skills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["council_id"],
            ["councils.id"],
            name=op.f("fk_skills_council_id_councils"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skills")),
        sa.UniqueConstraint("council_id", "key", name=op.f("uq_skills_council_id_key")),
    )
    op.create_table(
        "talent_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("own_words", sa.String(length=300), nullable=True),
        sa.Column("languages", sa.String(length=200), nullable=True),
        sa.Column("weekdays", sa.Boolean(), nullable=False),
        sa.Column("evenings", sa.Boolean(), nullable=False),
        sa.Column("weekends", sa.Boolean(), nullable=False),
        sa.Column("neighbourhood", sa.String(length=100), nullable=True),
        sa.Column("contact_ok", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["council_id"],
            ["councils.id"],
            name=op.f("fk_talent_profiles_council_id_councils"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_talent_profiles_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_talent_profiles")),
        sa.UniqueConstraint(
            "council_id", "person_id", name=op.f("uq_talent_profiles_council_id_person_id")
        ),
    )
    with op.batch_alter_table("talent_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_talent_profiles_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "profile_skills",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["talent_profiles.id"],
            name=op.f("fk_profile_skills_profile_id_talent_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["skills.id"],
            name=op.f("fk_profile_skills_skill_id_skills"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "skill_id", name=op.f("pk_profile_skills")),
    )
    with op.batch_alter_table("profile_skills", schema=None) as batch_op:
        batch_op.create_index(
            "ix_profile_skills_skill_profile", ["skill_id", "profile_id"], unique=False
        )

    with op.batch_alter_table("councils", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("neighbourhoods", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("councils", schema=None) as batch_op:
        batch_op.drop_column("neighbourhoods")

    with op.batch_alter_table("profile_skills", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_skills_skill_profile")

    op.drop_table("profile_skills")
    with op.batch_alter_table("talent_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_talent_profiles_person_id"))

    op.drop_table("talent_profiles")
    op.drop_table("skills")
