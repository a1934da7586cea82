"""`coupdepouce export meetings`: each meeting of a council with who answered what, in the
council's local time, with first names only and never a Telegram id."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from flows.councils import create as create_council
from storage import db
from storage.models import Council, Meeting, MeetingInvite, MeetingStatus, Rsvp
from tests.factories import add_residents
from tests.helpers import FR, read_csv, run_cli

TELEGRAM_IDS = [47_001, 47_002, 47_003, 47_004]


def meeting(council_id: int, uid: str, title: str, starts: datetime, ends: datetime) -> Meeting:
    return Meeting(
        council_id=council_id,
        uid=uid,
        title=title,
        place="Maison de quartier, 3 rue des Tilleuls",
        starts_at=starts,
        ends_at=ends,
        sequence=0,
        status=MeetingStatus.SCHEDULED,
        reminder_hours=[],
        skill_ids=[],
        audience="all",
    )


async def seed_meetings(database_url: str, council: Council) -> None:
    """Two meetings in December (Paris is at +01:00), one answered, one not; and another
    council's meeting, which never shows."""
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            await _seed(session, council)
    finally:
        await engine.dispose()


async def _seed(session: AsyncSession, council: Council) -> None:
    amina, bruno, chloe, david = await add_residents(session, council, TELEGRAM_IDS)
    for person, name in zip(
        (amina, bruno, chloe, david), ("Amina", "Bruno", "Chloé", "David"), strict=True
    ):
        person.first_name = name
    # Added first, but starts later: the export is ordered by start.
    later = meeting(
        council.id,
        "later@test",
        "Fête des voisins",
        datetime(2025, 12, 20, 13, 0, tzinfo=UTC),
        datetime(2025, 12, 20, 16, 0, tzinfo=UTC),
    )
    assembly = meeting(
        council.id,
        "assembly@test",
        "Assemblée de quartier",
        datetime(2025, 12, 10, 17, 30, tzinfo=UTC),
        datetime(2025, 12, 10, 19, 30, tzinfo=UTC),
    )
    other = await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")
    elsewhere = meeting(
        other.id,
        "elsewhere@test",
        "Réunion ailleurs",
        datetime(2025, 12, 5, 17, 0, tzinfo=UTC),
        datetime(2025, 12, 5, 18, 0, tzinfo=UTC),
    )
    session.add_all([later, assembly, elsewhere])
    await session.flush()
    session.add_all(
        [
            MeetingInvite(
                meeting_id=assembly.id,
                person_id=amina.id,
                rsvp=Rsvp.COMING,
                guests=2,
                needs=["childcare", "interpreting"],
                answered_at=datetime(2025, 12, 2, 9, 0, tzinfo=UTC),
                attended=True,
            ),
            MeetingInvite(  # answered first, listed first
                meeting_id=assembly.id,
                person_id=bruno.id,
                rsvp=Rsvp.DECLINED,
                answered_at=datetime(2025, 12, 1, 8, 0, tzinfo=UTC),
                attended=False,
            ),
            MeetingInvite(
                meeting_id=assembly.id,
                person_id=chloe.id,
                rsvp=Rsvp.MAYBE,
                answered_at=datetime(2025, 12, 3, 10, 0, tzinfo=UTC),
            ),
            MeetingInvite(meeting_id=assembly.id, person_id=david.id),  # no answer yet
            MeetingInvite(meeting_id=later.id, person_id=david.id),  # no answer yet
            MeetingInvite(
                meeting_id=elsewhere.id,
                person_id=david.id,
                rsvp=Rsvp.COMING,
                answered_at=datetime(2025, 12, 1, 12, 0, tzinfo=UTC),
            ),
        ]
    )


def assert_no_telegram_id(out: str) -> None:
    for telegram_id in TELEGRAM_IDS:
        assert str(telegram_id) not in out


async def test_export_meetings_as_json(council: Council, database_url: str) -> None:
    await seed_meetings(database_url, council)
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli(
        "export", "meetings", "--council", "quartier-nord", "--format", "json", env=env
    )
    assert code == 0, err
    assert_no_telegram_id(out)
    assembly, later = json.loads(out)
    assert {key: value for key, value in assembly.items() if key != "answers"} == {
        "meeting_id": assembly["meeting_id"],
        "title": "Assemblée de quartier",
        "starts_at": "2025-12-10T18:30:00+01:00",
        "ends_at": "2025-12-10T20:30:00+01:00",
        "place": "Maison de quartier, 3 rue des Tilleuls",
        "status": "scheduled",
    }
    assert assembly["answers"] == [
        {
            "first_name": "Bruno",
            "answer": "declined",
            "guests": 0,
            "needs": [],
            "answered_at": "2025-12-01T08:00:00+00:00",
            "attended": False,
        },
        {
            "first_name": "Amina",
            "answer": "coming",
            "guests": 2,
            "needs": ["childcare", "interpreting"],
            "answered_at": "2025-12-02T09:00:00+00:00",
            "attended": True,
        },
        {
            "first_name": "Chloé",
            "answer": "maybe",
            "guests": 0,
            "needs": [],
            "answered_at": "2025-12-03T10:00:00+00:00",
            "attended": None,
        },
    ]
    assert later["title"] == "Fête des voisins"
    assert (later["starts_at"], later["ends_at"]) == (
        "2025-12-20T14:00:00+01:00",
        "2025-12-20T17:00:00+01:00",
    )
    assert later["answers"] == []  # nobody answered: still exported
    for entry in (assembly, later):
        for answer in entry["answers"]:
            assert set(answer) == {
                "first_name",
                "answer",
                "guests",
                "needs",
                "answered_at",
                "attended",
            }


async def test_export_meetings_as_csv(council: Council, database_url: str) -> None:
    """A French council's spreadsheet: French headers and answers, ';' between cells, every
    time on Paris's clock to the minute."""
    await seed_meetings(database_url, council)
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli("export", "meetings", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert_no_telegram_id(out)
    lines = out.splitlines()
    assert lines[0] == (
        "\ufeffNuméro de réunion;Titre;Début;Fin;Lieu;État;"
        "Prénom;Réponse;Accompagnant·es;Besoins;Date de réponse;Présent·e"
    )
    rows = read_csv(out, ";")
    assert [(row["Titre"], row["Prénom"]) for row in rows] == [
        ("Assemblée de quartier", "Bruno"),
        ("Assemblée de quartier", "Amina"),
        ("Assemblée de quartier", "Chloé"),
        ("Fête des voisins", ""),  # one row with empty person columns
    ]
    bruno, amina, chloe, later = rows
    assert amina == {
        "Numéro de réunion": amina["Numéro de réunion"],
        "Titre": "Assemblée de quartier",
        "Début": "2025-12-10 18:30",  # 17:30 UTC, on Paris's clock
        "Fin": "2025-12-10 20:30",
        "Lieu": "Maison de quartier, 3 rue des Tilleuls",
        "État": "prévue",
        "Prénom": "Amina",
        "Réponse": "Je viens",  # the button she tapped
        "Accompagnant·es": "2",
        "Besoins": f"{FR._('Childcare')}, Interprétariat",  # "Garde d'enfants", typographic
        "Date de réponse": "2025-12-02 10:00",
        "Présent·e": "oui",
    }
    assert (bruno["Réponse"], bruno["Besoins"], bruno["Présent·e"]) == (
        "Je ne peux pas venir",
        "",
        "non",
    )
    assert (chloe["Réponse"], chloe["Présent·e"]) == ("Peut-être", "")
    assert later["Début"] == "2025-12-20 14:00"
    empty = ("Réponse", "Accompagnant·es", "Besoins", "Date de réponse", "Présent·e")
    assert [later[key] for key in empty] == ["", "", "", "", ""]


async def test_export_meetings_of_an_unknown_council(council: Council, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli("export", "meetings", "--council", "nowhere", env=env)
    assert code == 2
    assert out == ""
    assert err.strip() == (
        "coupdepouce: error: no council named 'nowhere'; see `coupdepouce council list`"
    )
