"""Exports a coordinator can open: the CSV of `coupdepouce export` and of the dashboard in
the council's language, with its locale's separator and decimal sign, a BOM, yes and no in
words, and every time on the council's clock to the minute; the same as an Excel workbook
with real numbers and dates; JSON unchanged for programs, whatever the language."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.consultations import service
from flows.consultations.results import table
from flows.consultations.service import NewQuestion
from flows.i18n import SHIPPED_LOCALES, Translator
from flows.spreadsheet import XLSX_TYPE, Column, Reader, Sheet, csv_bytes
from storage import db
from storage.models import Council, MeetingInvite, QuestionKind, Rsvp, TalentProfile
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator
from tests.factories import add_residents
from tests.helpers import AR, EN, FR, read_csv, run_cli
from tests.test_consultations_export import REPORT_TO, answer, consultation
from tests.test_dashboard import Tab, link_for
from tests.test_meetings_export import meeting
from tests.test_talents import coordinator_of

ASSEMBLY_START = datetime(2025, 12, 10, 17, 30, tzinfo=UTC)
# Amina answered with a time to the microsecond, as the bot records it.
AMINA_ANSWERED = datetime(2025, 12, 2, 9, 5, 42, 123_456, tzinfo=UTC)
EVIL_NAME = "=2+3"  # a resident's first name that a spreadsheet would compute
MINUTE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


@dataclass(frozen=True)
class Locale:
    """What a council of this language gets, and the time zone it is given here."""

    timezone: str
    delimiter: str
    yes: str
    no: str
    two_thirds: str  # a share, to three places
    mean: str  # an average, to two places
    start: str  # the assembly's start on the council's clock
    answered: str  # Amina's answer on the council's clock, to the minute


LOCALES = {
    "fr": Locale(
        timezone="Europe/Paris",
        delimiter=";",
        yes="oui",
        no="non",
        two_thirds="0,667",
        mean="3,67",
        start="2025-12-10 18:30",
        answered="2025-12-02 10:05",
    ),
    "en": Locale(
        timezone="Europe/London",
        delimiter=",",
        yes="yes",
        no="no",
        two_thirds="0.667",
        mean="3.67",
        start="2025-12-10 17:30",
        answered="2025-12-02 09:05",
    ),
    "ar": Locale(  # Arabic words, Latin digits: what spreadsheets read as numbers
        timezone="Asia/Beirut",
        delimiter=",",
        yes=AR._("yes"),
        no=AR._("no"),
        two_thirds="0.667",
        mean="3.67",
        start="2025-12-10 19:30",
        answered="2025-12-02 11:05",
    ),
}


async def seed(session: AsyncSession, council: Council, locale: str) -> None:
    """The council speaks `locale`; a meeting two residents answered (one came, one did
    not), a closed consultation's scale answered 4, 4 and 3, and a talent."""
    stored = await session.get_one(Council, council.id)
    stored.locale, stored.timezone = locale, LOCALES[locale].timezone
    stored.small_group_threshold = 3
    amina, bruno, chloe = await add_residents(session, stored, [71_001, 71_002, 71_003])
    amina.first_name, bruno.first_name, chloe.first_name = "Amina", EVIL_NAME, "Chloé"
    assembly = meeting(
        stored.id, "assembly@test", "Assemblée de quartier", ASSEMBLY_START, ASSEMBLY_START
    )
    session.add(assembly)
    session.add(TalentProfile(council_id=stored.id, person_id=amina.id, own_words="Couture"))
    await session.flush()
    session.add_all(
        [
            MeetingInvite(
                meeting_id=assembly.id,
                person_id=amina.id,
                rsvp=Rsvp.COMING,
                guests=2,
                answered_at=AMINA_ANSWERED,
                attended=True,
            ),
            MeetingInvite(
                meeting_id=assembly.id,
                person_id=bruno.id,
                rsvp=Rsvp.DECLINED,
                answered_at=datetime(2025, 12, 3, 9, 0, tzinfo=UTC),
                attended=False,
            ),
        ]
    )
    opens, closes = (
        datetime(2025, 11, 3, 9, 0, tzinfo=UTC),
        datetime(2025, 11, 17, 9, 0, tzinfo=UTC),
    )
    asked = await service.create(
        session,
        stored,
        consultation(
            "Le quartier",
            [NewQuestion(QuestionKind.SCALE, "Le quartier est-il agréable ?")],
            opens,
            closes,
            anonymous=True,
        ),
        None,
        REPORT_TO,
        now=opens,
    )
    for person, value in ((amina, 4), (bruno, 4), (chloe, 3)):
        await answer(session, asked, person, [value])
    await service.close_consultation(session, asked, closes)


async def seeded(database_url: str, council: Council, locale: str) -> None:
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            await seed(session, council, locale)
    finally:
        await engine.dispose()


async def seeded_locale(database_url: str, council: Council, locale: str, timezone: str) -> None:
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            await session.execute(
                update(Council)
                .where(Council.id == council.id)
                .values(locale=locale, timezone=timezone)
            )
    finally:
        await engine.dispose()


def headers(t: Translator, *labels: str) -> list[str]:
    return [t._(label) for label in labels]


def check_meetings_csv(text: str, locale: str) -> None:
    """The meetings' CSV as a spreadsheet of the council's locale reads it."""
    t, expected = Translator(locale), LOCALES[locale]
    amina, bruno = read_csv(text, expected.delimiter)
    assert list(amina)[:3] == headers(t, "Meeting number", "Title", "Start")
    start, answered, attended = headers(t, "Start", "Answered on", "Attended")
    assert amina[start] == expected.start  # on the council's clock
    assert amina[answered] == expected.answered  # to the minute, no seconds or microseconds
    assert MINUTE.fullmatch(amina[answered])
    assert (amina[attended], bruno[attended]) == (expected.yes, expected.no)
    response, guests = headers(t, "Response", "Guests")
    assert (amina[response], amina[guests]) == (t._("I'm coming"), "2")
    assert bruno[t._("First name")] == "'" + EVIL_NAME  # shown as text, not computed


def check_consultations_csv(text: str, locale: str) -> None:
    """The consultations' CSV: the shares and averages in the locale's decimal sign."""
    t, expected = Translator(locale), LOCALES[locale]
    rows = read_csv(text, expected.delimiter)
    group, option, share, average = headers(t, "Group", "Option", "Share", "Average")
    [four] = [row for row in rows if row[group] == t._("Everyone") and row[option] == "4"]
    assert (four[share], four[average]) == (expected.two_thirds, expected.mean)


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
async def test_the_cli_writes_csv_in_the_councils_locale(
    council: Council, database_url: str, locale: str
) -> None:
    await seeded(database_url, council, locale)
    env = {"DATABASE_URL": database_url}
    outputs = {}
    for kind in ("meetings", "consultations", "talents"):
        code, out, err = await run_cli("export", kind, "--council", "quartier-nord", env=env)
        assert code == 0, err
        outputs[kind] = out
    check_meetings_csv(outputs["meetings"], locale)
    check_consultations_csv(outputs["consultations"], locale)
    t = Translator(locale)
    [talent] = read_csv(outputs["talents"], LOCALES[locale].delimiter)
    assert MINUTE.fullmatch(talent[t._("Joined")])  # when the bot stored it, to the minute
    assert talent[t._("Hidden")] == LOCALES[locale].no


async def test_french_and_english_csv_read_as_their_spreadsheets_expect(
    council: Council, database_url: str
) -> None:
    """Spelt out: French headers, ';', a decimal comma; English keeps ',' and '.'."""
    await seeded(database_url, council, "fr")
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli("export", "consultations", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert out.startswith("\ufeffNuméro de consultation;Consultation;Question;Groupe;Réponse;")
    assert ";0,667;3;3,67\r\n" in out  # two of three chose 4; the average is 11/3
    code, out, err = await run_cli("export", "meetings", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert ";2025-12-10 18:30;" in out and ";Je viens;2;;2025-12-02 10:05;oui\r\n" in out

    await seeded_locale(database_url, council, "en", "Europe/Paris")
    code, out, err = await run_cli("export", "consultations", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert out.startswith("\ufeffConsultation number,Consultation,Question,Group,Option,")
    assert ",0.667,3,3.67\r\n" in out


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
async def test_the_dashboard_serves_csv_in_the_councils_locale(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, locale: str
) -> None:
    await in_transaction(bot, lambda session: seed(session, council, locale))
    nadia = await coordinator_of(bot, emulator, council, 71_010)  # she reads English
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord/export"
        async with tab.client.get(f"{base}/meetings.csv") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
            check_meetings_csv((await response.read()).decode(), locale)
        async with tab.client.get(f"{base}/consultations.csv") as response:
            assert response.status == 200
            check_consultations_csv((await response.read()).decode(), locale)
    finally:
        await tab.close()


def check_workbook(content: bytes) -> None:
    """The meetings of a French council as a workbook: French headers in bold, numbers as
    numbers, times as dates on the council's clock, a resident's formula-like name as text."""
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert isinstance(sheet, Worksheet)
    rows = list(sheet.iter_rows())
    header = [cell.value for cell in rows[0]]
    assert header[:4] == ["Numéro de réunion", "Titre", "Début", "Fin"]
    assert all(cell.font.bold for cell in rows[0])
    amina, bruno = ({key: cell for key, cell in zip(header, row, strict=True)} for row in rows[1:])
    assert amina["Accompagnant·es"].value == 2 and amina["Accompagnant·es"].data_type == "n"
    assert isinstance(amina["Numéro de réunion"].value, int)
    assert amina["Début"].value == datetime(2025, 12, 10, 18, 30)  # noqa: DTZ001 - Paris's clock
    assert amina["Début"].is_date
    assert amina["Date de réponse"].value == datetime(2025, 12, 2, 10, 5)  # noqa: DTZ001
    assert (amina["Présent·e"].value, bruno["Présent·e"].value) == ("oui", "non")
    assert amina["Réponse"].value == "Je viens"
    name = bruno["Prénom"]
    assert (name.value, name.data_type, name.quotePrefix) == (EVIL_NAME, "s", True)
    assert sheet.column_dimensions["B"].width > 8  # as wide as "Assemblée de quartier"


async def test_the_cli_writes_a_workbook_to_a_file(
    council: Council, database_url: str, tmp_path: Path
) -> None:
    await seeded(database_url, council, "fr")
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli(
        "export", "meetings", "--council", "quartier-nord", "--format", "xlsx", env=env
    )
    assert (code, out) == (2, "")  # a binary file is not for a terminal
    assert err.strip() == (
        "coupdepouce: error: an xlsx workbook is a binary file: write it with --output FILE.xlsx"
    )
    workbook = tmp_path / "meetings.xlsx"
    code, out, err = await run_cli(
        "export",
        "meetings",
        "--council",
        "quartier-nord",
        "--format",
        "xlsx",
        "-o",
        str(workbook),
        env=env,
    )
    assert code == 0, err
    assert out.strip() == f"meetings of quartier-nord written to {workbook}"
    check_workbook(workbook.read_bytes())
    # The consultations' shares are numbers, shown with their three places.
    figures = tmp_path / "consultations.xlsx"
    code, _, err = await run_cli(
        "export",
        "consultations",
        "--council",
        "quartier-nord",
        "--format",
        "xlsx",
        "--output",
        str(figures),
        env=env,
    )
    assert code == 0, err
    sheet = openpyxl.load_workbook(figures).active
    assert isinstance(sheet, Worksheet)
    shares = [cell for cell in sheet["G"] if cell.value == pytest.approx(2 / 3)]
    assert shares and all(cell.number_format == "0.000" for cell in shares)
    # CSV and JSON go to a file as well as to stdout.
    for format in ("csv", "json"):
        path = tmp_path / f"meetings.{format}"
        code, _, err = await run_cli(
            "export",
            "meetings",
            "--council",
            "quartier-nord",
            "--format",
            format,
            "--output",
            str(path),
            env=env,
        )
        assert code == 0, err
        assert path.read_bytes().startswith(b"\xef\xbb\xbf" if format == "csv" else b"[")


async def test_the_dashboard_serves_a_workbook(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await in_transaction(bot, lambda session: seed(session, council, "fr"))
    nadia = await coordinator_of(bot, emulator, council, 71_011)
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        overview = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord/"
        _, page = await tab.get(overview)
        assert 'href="/dashboard/quartier-nord/export/meetings.xlsx"' in page
        async with tab.client.get(overview + "export/meetings.xlsx") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == XLSX_TYPE
            assert response.headers["Content-Disposition"] == (
                'attachment; filename="quartier-nord-meetings.xlsx"'
            )
            check_workbook(await response.read())
    finally:
        await tab.close()


async def test_json_stays_for_programs_whatever_the_language(
    council: Council, database_url: str
) -> None:
    await seeded(database_url, council, "ar")
    code, out, err = await run_cli(
        "export",
        "meetings",
        "--council",
        "quartier-nord",
        "--format",
        "json",
        env={"DATABASE_URL": database_url},
    )
    assert code == 0, err
    [assembly] = json.loads(out)
    assert assembly["starts_at"] == "2025-12-10T19:30:00+02:00"  # ISO, with its offset
    amina = assembly["answers"][0]
    assert (amina["answer"], amina["attended"]) == ("coming", True)
    assert amina["answered_at"] == "2025-12-02T09:05:42.123456+00:00"


def test_the_chat_results_file_is_in_its_readers_language() -> None:
    """The CSV sent with a consultation's results, for a French organiser and an English one."""
    results = {
        "questions": [
            {
                "text": "Le quartier est-il agréable ?",
                "options": ["1", "2"],
                "all": {"answered": 3, "counts": [1, 2], "mean": 1.6666666},
                "by_neighbourhood": {"*other*": {"answered": 3, "counts": [1, 2], "mean": 1.5}},
                "texts": [],
            }
        ]
    }
    french = table(FR, results).decode("utf-8")
    assert french.splitlines()[:3] == [
        "\ufeffQuestion;Groupe;Réponse;Nombre de réponses;Part;Répondant·es;Moyenne",
        "1. Le quartier est-il agréable ?;Tout le monde;1;1;0,333;3;1,67",
        "1. Le quartier est-il agréable ?;Tout le monde;2;2;0,667;3;1,67",
    ]
    assert "Autres quartiers;1;1;0,333;3;1,50" in french
    english = table(EN, results).decode("utf-8")
    assert english.splitlines()[1] == "1. Le quartier est-il agréable ?,Everyone,1,1,0.333,3,1.67"


@pytest.mark.parametrize(
    ("locale", "delimiter", "written"),
    [("fr", ";", "1234,5"), ("en", ",", "1234.5"), ("ar", ",", "1234.5")],
)
def test_numbers_stay_numbers_in_each_locale(locale: str, delimiter: str, written: str) -> None:
    """No thousands separator, no exponent, no Arabic-Indic digits: what a spreadsheet of the
    locale reads as a number."""
    reader = Reader(Translator(locale))
    assert reader.delimiter == delimiter
    column = Column("n", "n")
    assert reader.text(column, 1234.5) == written
    assert reader.text(column, Decimal("1234.50")) == written + "0"
    assert reader.text(column, 0.0000001) == "0" + reader.decimal_sign + "0000001"
    assert reader.text(column, -3) == "-3"  # a number we write is never quoted
    sheet = Sheet([Column("n", "n"), Column("ok", "ok")], [{"n": -2.5, "ok": False}])
    assert csv_bytes(sheet, reader).decode().splitlines()[1] == (
        f"-2{reader.decimal_sign}5{delimiter}{reader.t._('no')}"
    )
