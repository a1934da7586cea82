"""Anonymous consultations are anonymous by design: while open, no ballot holds a person and
live figures wait for enough answers; after closing, someone who reads the whole database
cannot tell whose any ballot is."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import DateTime, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from storage.models import Ballot, Base, Consultation, Council, Participant, Response
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator
from tests.test_consultations import (
    ANNA,
    BOB,
    CHLOE,
    DAVID,
    EVA,
    FARID,
    RESIDENTS,
    answer_all,
    close_now,
    invitation,
    organiser_of,
    seed,
    send,
    text_of,
)

# They answer in an order that is neither their ids' nor their chats'.
ORDER = (EVA, FARID, BOB, ANNA, DAVID, CHLOE)
PLACES = {
    ANNA: "Les Tilleuls",
    BOB: "Les Tilleuls",
    CHLOE: "La Gare",
    DAVID: "Les Tilleuls",
    EVA: "Les Tilleuls",
    FARID: "Les Tilleuls",
}
WITHHELD = (
    "The figures show once 5 people have answered, so that no one's answers can be told apart."
)


async def dump(session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, with where it is stored (SQLite's rowid, PostgreSQL's
    ctid): what someone who copied the database would have."""
    postgres = session.get_bind().dialect.name == "postgresql"
    place = "ctid::text" if postgres else "rowid"
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in Base.metadata.sorted_tables:
        rows = await session.execute(text(f"SELECT {place} AS stored_at, * FROM {table.name}"))
        tables[table.name] = [dict(row._mapping) for row in rows]
    return tables


def stored_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def where(row: dict[str, Any]) -> tuple[int, ...]:
        at = row["stored_at"]
        if isinstance(at, str):  # "(page,item)"
            return tuple(int(part) for part in at.strip("()").split(","))
        return (int(at),)

    return sorted(rows, key=where)


async def test_no_ballot_leads_to_its_person_while_open_or_after_closing(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar, live=True)
    people = {chat: emulator.resident(chat) for chat in RESIDENTS}
    ideas = {chat: f"Idée {index}" for index, chat in enumerate(ORDER)}

    for count, chat in enumerate(ORDER, start=1):
        await answer_all(people[chat], "Un jardin partagé", "4", ideas[chat], PLACES[chat])
        live = await people[chat].wait_for(lambda m: text_of(m).startswith("📊 Results so far"))
        if count < 5:
            # Before five answers, a figure that moves would tell what the last one said.
            assert WITHHELD in text_of(live)
            assert "Un jardin partagé" not in text_of(live)
        else:
            assert WITHHELD not in text_of(live)
            assert f"• Un jardin partagé: {count} (100%)" in text_of(live)

        async def open_ballots(session: AsyncSession) -> list[Ballot]:
            return list(await session.scalars(select(Ballot)))

        ballots = await in_transaction(bot, open_ballots)
        assert len(ballots) == count
        assert all(b.person_id is None and b.voter for b in ballots)  # never a person

    # Coming back to change one's answers finds one's own ballot, not a new one.
    anna = people[ANNA]
    before = anna.inbox[-1].message_id
    anna.tap("✏️ Answer", await invitation(anna))
    first = await anna.wait_for(lambda m: text_of(m).startswith("1/3") and m.message_id > before)
    anna.tap("Une aire de jeux", first)
    await anna.wait_for(lambda m: text_of(m).startswith("2/3") and m.message_id >= first.message_id)
    ids = await in_transaction(bot, lambda s: s.scalars(select(Ballot.id)))
    assert len(ids.all()) == 6

    assert await close_now(bot) == 1
    copied = await in_transaction(bot, dump)

    (consultation,) = copied["consultations"]
    assert consultation["ballot_key"] is None
    ballots = copied["ballots"]
    assert len(ballots) == 6
    assert all(b["person_id"] is None and b["voter"] is None for b in ballots)
    # Nothing about a ballot or an answer says when it was given.
    for table in (Ballot.__table__, Response.__table__, Participant.__table__):
        assert not [c.name for c in table.columns if isinstance(c.type, DateTime)]
    # Ballot ids are drawn at random, and nothing but the answers points to a ballot.
    ballot_ids = {b["id"] for b in ballots}
    assert max(ballot_ids) - min(ballot_ids) > 10**6
    for name, rows in copied.items():
        for row in rows:
            for column, value in row.items():
                if (name, column) in {("ballots", "id"), ("responses", "ballot_id")}:
                    continue
                if column != "stored_at" and isinstance(value, int):
                    assert value not in ballot_ids, (name, column)
    # The answers were written again at closing in the order of their ballots' random ids:
    # their ids (and, on SQLite, where they are stored) no longer tell the order in which
    # people answered.
    responses = copied["responses"]
    orderings = [sorted(responses, key=lambda r: r["id"])]
    if bot.settings.database_url.startswith("sqlite"):
        orderings.append(stored_order(responses))
    for ordering in orderings:
        seen = [r["ballot_id"] for r in ordering]
        assert seen == sorted(seen)
    taking_part = copied["consultation_participants"]

    # Each ballot hides among at least five people: its neighbourhood is the only thing it
    # shares with them, and members' neighbourhoods are known.
    place_of = {
        m["person_id"]: m["neighbourhood"]
        for m in copied["memberships"]
        if m["council_id"] == council.id
    }
    took_part = [p["person_id"] for p in taking_part]
    candidates: dict[int, list[int]] = defaultdict(list)
    for ballot in ballots:
        for person_id in took_part:
            if ballot["neighbourhood"] in (None, place_of[person_id]):
                candidates[ballot["id"]].append(person_id)
    assert min(len(found) for found in candidates.values()) >= 5
    assert all(b["verified"] for b in ballots)  # nor whether they were verified members

    # And the results were counted before any of this: Anna's change is in them.
    async def results(session: AsyncSession) -> Any:
        return (await session.scalars(select(Consultation.results))).one()

    figures = await in_transaction(bot, results)
    assert figures["questions"][0]["all"]["counts"][:2] == [5, 1]
    assert sorted(figures["questions"][2]["texts"]) == sorted(ideas.values())
