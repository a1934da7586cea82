"""`coupdepouce export consultations`: each consultation of a council with its figures (kept
at closing, or so far while it is open), in the council's local time, with small
neighbourhood groups merged or hidden as in chat, and no names where answers are anonymous."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.service import ReportTo
from flows.consultations import service
from flows.consultations.service import NewConsultation, NewQuestion
from flows.councils import create as create_council
from storage import db
from storage.models import Consultation, Council, Membership, Person, QuestionKind
from tests.factories import add_residents
from tests.helpers import read_csv, run_cli

TELEGRAM_IDS = [48_001, 48_002, 48_003, 48_004, 48_005, 48_006]
NAMES = ("Amina", "Bruno", "Chloé", "David", "Eva", "Farid")
# Three live in Les Tilleuls; La Gare, Le Centre and "not given" have one each: too few.
PLACES = ("Les Tilleuls", "Les Tilleuls", "Les Tilleuls", "La Gare", "Le Centre", None)
THRESHOLD = 3
REPORT_TO = ReportTo("telegram", "48000", "fr")
# The figure columns of a French council's spreadsheet.
FIGURES = (
    "Question",
    "Groupe",
    "Réponse",
    "Nombre de réponses",
    "Part",
    "Répondant·es",
    "Moyenne",
)

Answer = int | str | None  # an option (or a scale value), a free text, or skipped


def consultation(
    title: str, questions: list[NewQuestion], opens: datetime, closes: datetime, anonymous: bool
) -> NewConsultation:
    return NewConsultation(title, questions, opens, closes, anonymous=anonymous)


async def answer(
    session: AsyncSession, asked: Consultation, person: Person, answers: Sequence[Answer]
) -> None:
    ballot = await service.ballot_for(session, asked, person)
    questions = await service.questions_of(session, asked.id)
    for question, given in zip(questions, answers, strict=True):
        if isinstance(given, str):
            await service.record(session, person, ballot, question, text=given)
        elif given is not None:
            await service.record(session, person, ballot, question, [given])


async def seed_consultations(database_url: str, council: Council) -> None:
    """A closed anonymous consultation, an open one with named answers, a scheduled one; and
    another council's consultation, which never shows."""
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            await _seed(session, council)
    finally:
        await engine.dispose()


async def _seed(session: AsyncSession, council: Council) -> None:
    stored = await session.get_one(Council, council.id)
    stored.small_group_threshold = THRESHOLD
    residents = await add_residents(session, stored, TELEGRAM_IDS)
    for person, name, place in zip(residents, NAMES, PLACES, strict=True):
        person.first_name = name
        await session.execute(
            update(Membership)
            .where(Membership.person_id == person.id, Membership.council_id == stored.id)
            .values(neighbourhood=place)
        )
    amina, bruno, chloe, david, eva, farid = residents

    # Added first, but opens last: the export is ordered by opening time.
    await service.create(
        session,
        stored,
        consultation(
            "Fête de fin d'année",
            [NewQuestion(QuestionKind.SINGLE, "Quel samedi ?", ["Le 10", "Le 17"])],
            datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            datetime(2026, 1, 19, 9, 0, tzinfo=UTC),
            anonymous=True,
        ),
        None,
        REPORT_TO,
        now=datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
    )

    garden = await service.create(
        session,
        stored,
        consultation(
            "Le jardin partagé",
            [
                NewQuestion(QuestionKind.SINGLE, "Que planter ?", ["Des fleurs", "Des légumes"]),
                NewQuestion(QuestionKind.SCALE, "Le quartier est-il agréable ?"),
                NewQuestion(QuestionKind.TEXT, "Une idée ?"),
            ],
            datetime(2025, 11, 3, 9, 0, tzinfo=UTC),
            datetime(2025, 11, 17, 9, 0, tzinfo=UTC),
            anonymous=True,
        ),
        None,
        REPORT_TO,
        now=datetime(2025, 11, 3, 9, 0, tzinfo=UTC),
    )
    await answer(session, garden, amina, [0, 5, "Des bancs, à l'ombre"])
    await answer(session, garden, bruno, [1, 4, None])
    await answer(session, garden, chloe, [1, 4, None])
    await answer(session, garden, david, [0, 2, "Un composteur"])
    await answer(session, garden, eva, [1, None, None])
    await answer(session, garden, farid, [1, 3, None])
    await service.close_consultation(session, garden, datetime(2025, 11, 17, 9, 0, tzinfo=UTC))

    hours = await service.create(
        session,
        stored,
        consultation(
            "Horaires de la maison de quartier",
            [
                NewQuestion(QuestionKind.SINGLE, "Quel jour ?", ["Samedi", "Dimanche"]),
                NewQuestion(QuestionKind.TEXT, "Un mot ?"),
            ],
            datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
            datetime(2025, 12, 15, 9, 0, tzinfo=UTC),
            anonymous=False,
        ),
        None,
        REPORT_TO,
        now=datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
    )
    await answer(session, hours, amina, [0, "Le matin"])
    await answer(session, hours, bruno, [0, None])
    await answer(session, hours, chloe, [1, None])
    await answer(session, hours, david, [1, "Après 18 h"])

    other = await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")
    await service.create(
        session,
        other,
        consultation(
            "Consultation ailleurs",
            [NewQuestion(QuestionKind.TEXT, "Une idée ?")],
            datetime(2025, 11, 1, 9, 0, tzinfo=UTC),
            datetime(2025, 11, 20, 9, 0, tzinfo=UTC),
            anonymous=True,
        ),
        None,
        REPORT_TO,
        now=datetime(2025, 11, 1, 9, 0, tzinfo=UTC),
    )


async def set_threshold(database_url: str, council: Council, threshold: int) -> None:
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            stored = await session.get_one(Council, council.id)
            stored.small_group_threshold = threshold
    finally:
        await engine.dispose()


def figures(row: dict[str, str]) -> list[str]:
    return [row[key] for key in FIGURES]


def assert_no_telegram_id(out: str) -> None:
    for telegram_id in TELEGRAM_IDS:
        assert str(telegram_id) not in out


def assert_small_groups_hidden(out: str) -> None:
    for place in ("La Gare", "Le Centre", "*unknown*", "Neighbourhood not given", "non précisé"):
        assert place not in out


async def test_export_consultations_as_json(council: Council, database_url: str) -> None:
    await seed_consultations(database_url, council)
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli(
        "export", "consultations", "--council", "quartier-nord", "--format", "json", env=env
    )
    assert code == 0, err
    assert_no_telegram_id(out)
    assert_small_groups_hidden(out)
    garden, hours, party = json.loads(out)

    assert {key: value for key, value in garden.items() if key != "results"} == {
        "consultation_id": garden["consultation_id"],
        "title": "Le jardin partagé",
        "status": "closed",
        "anonymous": True,
        "opens_at": "2025-11-03T10:00:00+01:00",
        "closes_at": "2025-11-17T10:00:00+01:00",
        "audience_size": 6,
    }
    results = garden["results"]  # as kept at closing
    assert {key: value for key, value in results.items() if key != "questions"} == {
        "respondents": 6,
        "unverified_aside": 0,  # Telegram residents: all verified
        "counts_unverified": False,
        "audience": 6,
        "threshold": THRESHOLD,
        "anonymous": True,
    }
    plant, scale, idea = results["questions"]
    assert (plant["kind"], plant["text"], plant["options"]) == (
        "single",
        "Que planter ?",
        ["Des fleurs", "Des légumes"],
    )
    assert plant["all"] == {"answered": 6, "counts": [2, 4], "mean": None}
    assert plant["by_neighbourhood"] == {  # La Gare, Le Centre and "not given" merged
        "Les Tilleuls": {"answered": 3, "counts": [1, 2], "mean": None},
        "*other*": {"answered": 3, "counts": [1, 2], "mean": None},
    }
    assert scale["all"] == {"answered": 5, "counts": [0, 1, 1, 2, 1], "mean": 3.6}
    assert scale["by_neighbourhood"] == {  # the two others, even merged, are too few: hidden
        "Les Tilleuls": {"answered": 3, "counts": [0, 0, 0, 2, 1], "mean": 13 / 3}
    }
    assert idea["texts"] == ["Des bancs, à l'ombre", "Un composteur"]  # nobody named
    for name in NAMES:
        assert name not in json.dumps(garden, ensure_ascii=False)

    assert {key: value for key, value in hours.items() if key != "results"} == {
        "consultation_id": hours["consultation_id"],
        "title": "Horaires de la maison de quartier",
        "status": "open",
        "anonymous": False,
        "opens_at": "2025-12-01T10:00:00+01:00",
        "closes_at": "2025-12-15T10:00:00+01:00",
        "audience_size": 6,
    }
    day, word = hours["results"]["questions"]  # so far, computed for the export
    assert hours["results"]["respondents"] == 4
    assert day["all"] == {"answered": 4, "counts": [2, 2], "mean": None}
    assert day["by_neighbourhood"] == {
        "Les Tilleuls": {"answered": 3, "counts": [2, 1], "mean": None}
    }
    assert word["texts"] == ["Amina: Le matin", "David: Après 18 h"]  # named, as chosen

    assert party == {
        "consultation_id": party["consultation_id"],
        "title": "Fête de fin d'année",
        "status": "scheduled",
        "anonymous": True,
        "opens_at": "2026-01-05T10:00:00+01:00",
        "closes_at": "2026-01-19T10:00:00+01:00",
        "audience_size": 0,
        "results": None,  # nothing to count yet: still exported
    }
    assert "Consultation ailleurs" not in out


async def test_export_consultations_as_csv(council: Council, database_url: str) -> None:
    """A French council's spreadsheet: French headers and groups, ';' between cells and a
    decimal comma, so that shares and averages are numbers in a French spreadsheet."""
    await seed_consultations(database_url, council)
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli("export", "consultations", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert_no_telegram_id(out)
    assert_small_groups_hidden(out)
    lines = out.splitlines()
    assert lines[0] == (
        "\ufeffNuméro de consultation;Consultation;Question;Groupe;Réponse;Nombre de réponses;"
        "Part;Répondant·es;Moyenne"
    )
    rows = read_csv(out, ";")
    assert [row["Consultation"] for row in rows] == [
        *["Le jardin partagé"] * 18,  # by opening time
        *["Horaires de la maison de quartier"] * 6,
        "Fête de fin d'année",
    ]
    ids = [row["Numéro de consultation"] for row in rows]
    assert ids[0] == ids[17] != ids[18] == ids[23] != ids[24]
    plant, nice, idea = "1. Que planter ?", "2. Le quartier est-il agréable ?", "3. Une idée ?"
    everyone, tilleuls, others = "Tout le monde", "Les Tilleuls", "Autres quartiers"
    assert [figures(row) for row in rows[:18]] == [
        [plant, everyone, "Des fleurs", "2", "0,333", "6", ""],
        [plant, everyone, "Des légumes", "4", "0,667", "6", ""],
        [plant, tilleuls, "Des fleurs", "1", "0,333", "3", ""],
        [plant, tilleuls, "Des légumes", "2", "0,667", "3", ""],
        [plant, others, "Des fleurs", "1", "0,333", "3", ""],
        [plant, others, "Des légumes", "2", "0,667", "3", ""],
        [nice, everyone, "1", "0", "0,000", "5", "3,60"],
        [nice, everyone, "2", "1", "0,200", "5", "3,60"],
        [nice, everyone, "3", "1", "0,200", "5", "3,60"],
        [nice, everyone, "4", "2", "0,400", "5", "3,60"],
        [nice, everyone, "5", "1", "0,200", "5", "3,60"],
        [nice, tilleuls, "1", "0", "0,000", "3", "4,33"],  # the others are too few
        [nice, tilleuls, "2", "0", "0,000", "3", "4,33"],
        [nice, tilleuls, "3", "0", "0,000", "3", "4,33"],
        [nice, tilleuls, "4", "2", "0,667", "3", "4,33"],
        [nice, tilleuls, "5", "1", "0,333", "3", "4,33"],
        [idea, everyone, "Des bancs, à l'ombre", "", "", "", ""],
        [idea, everyone, "Un composteur", "", "", "", ""],
    ]
    for row in rows[:18]:  # anonymous: nobody's name, anywhere
        for name in NAMES:
            assert name not in "".join(row.values())
    day, word = "1. Quel jour ?", "2. Un mot ?"
    assert [figures(row) for row in rows[18:24]] == [  # so far
        [day, everyone, "Samedi", "2", "0,500", "4", ""],
        [day, everyone, "Dimanche", "2", "0,500", "4", ""],
        [day, tilleuls, "Samedi", "2", "0,667", "3", ""],
        [day, tilleuls, "Dimanche", "1", "0,333", "3", ""],
        [word, everyone, "Amina: Le matin", "", "", "", ""],  # named answers, as chosen
        [word, everyone, "David: Après 18 h", "", "", "", ""],
    ]
    assert figures(rows[24]) == [""] * 7  # scheduled: no figures yet, still listed


async def test_export_consultations_keeps_small_groups_hidden(
    council: Council, database_url: str
) -> None:
    await seed_consultations(database_url, council)
    env = {"DATABASE_URL": database_url}
    for format in ("csv", "json"):
        code, out, err = await run_cli(
            "export", "consultations", "--council", "quartier-nord", "--format", format, env=env
        )
        assert code == 0, err
        assert_small_groups_hidden(out)
    # With a threshold of one, the open consultation's figures so far show La Gare apart;
    # the closed one keeps the figures of its closing.
    await set_threshold(database_url, council, 1)
    code, out, err = await run_cli(
        "export", "consultations", "--council", "quartier-nord", "--format", "json", env=env
    )
    assert code == 0, err
    garden, hours, _ = json.loads(out)
    assert list(garden["results"]["questions"][0]["by_neighbourhood"]) == [
        "Les Tilleuls",
        "*other*",
    ]
    assert hours["results"]["threshold"] == 1
    assert hours["results"]["questions"][0]["by_neighbourhood"] == {
        "La Gare": {"answered": 1, "counts": [0, 1], "mean": None},
        "Les Tilleuls": {"answered": 3, "counts": [2, 1], "mean": None},
    }


async def test_export_consultations_of_an_unknown_council(
    council: Council, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli("export", "consultations", "--council", "nowhere", env=env)
    assert code == 2
    assert out == ""
    assert err.strip() == (
        "coupdepouce: error: no council named 'nowhere'; see `coupdepouce council list`"
    )


async def test_export_consultations_of_a_council_without_any(
    council: Council, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli("export", "consultations", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert read_csv(out, ";") == []  # the headers alone
    assert out.startswith("\ufeffNuméro de consultation;Consultation;Question;")
    code, out, err = await run_cli(
        "export", "consultations", "--council", "quartier-nord", "--format", "json", env=env
    )
    assert code == 0, err
    assert json.loads(out) == []
