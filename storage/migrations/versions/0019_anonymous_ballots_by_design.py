"""anonymous ballots by design: never a person on an anonymous ballot, a keyed `voter`
while open, random ballot and participant ids, participants written at the first answer

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-20 10:00:00.000000
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ballot_key", sa.LargeBinary(length=32), nullable=True))
    with op.batch_alter_table("ballots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voter", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_ballots_consultation_id_voter"), ["consultation_id", "voter"]
        )
    if postgres:
        # Ids are drawn at random from now on: 64 bits, and no sequence behind them.
        op.execute("ALTER TABLE responses ALTER COLUMN ballot_id TYPE BIGINT")
        op.execute("ALTER TABLE ballots ALTER COLUMN id TYPE BIGINT")
        op.execute("ALTER TABLE ballots ALTER COLUMN id DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS ballots_id_seq")
        op.execute("ALTER TABLE consultation_participants ALTER COLUMN id TYPE BIGINT")
        op.execute("ALTER TABLE consultation_participants ALTER COLUMN id DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS consultation_participants_id_seq")

    bind = op.get_bind()
    # Who has answered an open consultation is now written at the first answer.
    for consultation_id, person_id, place in bind.execute(
        sa.text(
            "SELECT b.consultation_id, b.person_id, b.neighbourhood FROM ballots b "
            "JOIN consultations c ON c.id = b.consultation_id "
            "WHERE c.status <> 'closed' AND b.person_id IS NOT NULL AND b.answered <> 0 "
            "AND NOT EXISTS (SELECT 1 FROM consultation_participants p "
            "WHERE p.consultation_id = b.consultation_id AND p.person_id = b.person_id)"
        )
    ).all():
        bind.execute(
            sa.text(
                "INSERT INTO consultation_participants (id, consultation_id, person_id, "
                "neighbourhood) VALUES (:id, :consultation, :person, :place)"
            ),
            {
                "id": secrets.randbelow(2**62) + 1,
                "consultation": consultation_id,
                "person": person_id,
                "place": place,
            },
        )
    # Open anonymous ballots let go of their person now, not at closing.
    for (consultation_id,) in bind.execute(
        sa.text("SELECT id FROM consultations WHERE anonymous AND status <> 'closed'")
    ).all():
        key = secrets.token_bytes(32)
        bind.execute(
            sa.text("UPDATE consultations SET ballot_key = :key WHERE id = :id"),
            {"key": key, "id": consultation_id},
        )
        for ballot_id, person_id in bind.execute(
            sa.text(
                "SELECT id, person_id FROM ballots "
                "WHERE consultation_id = :id AND person_id IS NOT NULL"
            ),
            {"id": consultation_id},
        ).all():
            voter = hmac.new(key, str(person_id).encode(), hashlib.sha256).hexdigest()
            bind.execute(
                sa.text("UPDATE ballots SET voter = :voter, person_id = NULL WHERE id = :id"),
                {"voter": voter, "id": ballot_id},
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in ("ballots", "consultation_participants"):
            op.execute(f"CREATE SEQUENCE IF NOT EXISTS {table}_id_seq OWNED BY {table}.id")
            op.execute(
                f"SELECT setval('{table}_id_seq', COALESCE((SELECT MAX(id) FROM {table}), 0) + 1,"
                " false)"
            )
            op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
    with op.batch_alter_table("ballots", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_ballots_consultation_id_voter"), type_="unique")
        batch_op.drop_column("voter")
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.drop_column("ballot_key")
