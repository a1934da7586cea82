"""each person's preferred identity, flagged

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 12:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("preferred", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.execute(  # a person's oldest identity stays their address, as before
        "UPDATE identities SET preferred = false WHERE EXISTS ("
        "SELECT 1 FROM identities AS older "
        "WHERE older.person_id = identities.person_id AND older.id < identities.id)"
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(
            "uq_identities_preferred",
            ["person_id"],
            unique=True,
            postgresql_where=sa.text("preferred"),
            sqlite_where=sa.text("preferred"),
        )


def downgrade() -> None:
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index("uq_identities_preferred")
        batch_op.drop_column("preferred")
