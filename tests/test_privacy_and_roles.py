"""/mydata, /forget, /help by role, and a coordinator named from the command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import CoupDePouce
from flows.engine import Engine, Flow, PersonalData
from flows.i18n import Translator
from flows.privacy.service import CORE_TABLES
from flows.registry import FLOWS
from storage.models import (
    Base,
    Conversation,
    Council,
    Identity,
    Membership,
    OutboxMessage,
    Person,
    Priority,
    Role,
    RoleGrant,
    utcnow,
)
from storage.queries import outbox, people
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator
from tests.helpers import EN, FR, count_rows, onboard, run_cli


async def test_mydata_sends_everything_kept_as_json(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    amina = emulator.resident(3001, first_name="Amina", language_code="fr", username="amina93")
    await onboard(amina)
    amina.send("/mydata")
    sent = await amina.next_message()
    assert sent.document is not None
    filename, content = sent.document
    assert filename == "mydata.json"
    data = json.loads(content)
    assert data["person"]["first_name"] == "Amina"
    assert data["person"]["language"] == "fr"
    assert data["person"]["consent"]["version"]
    [account] = data["accounts"]
    assert (account["channel"], account["id"], account["username"]) == (
        "telegram",
        "3001",
        "amina93",
    )
    assert [c["council"] for c in data["councils"]] == ["quartier-nord"]


async def test_mydata_before_consent_says_nothing_is_kept(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(3002, language_code="en")
    sam.send("/mydata")
    reply = await sam.next_message()
    assert reply.text == "We keep nothing about you."
    assert reply.document is None


async def test_forget_asks_then_erases_everything(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    karim = emulator.resident(3003, first_name="Karim", language_code="en")
    await onboard(karim, EN)
    karim.send("/forget")
    confirm = await karim.next_message()
    karim.tap("No, keep it", confirm)
    assert (await karim.next_message()).text == "Nothing was erased."
    assert await count_rows(bot, Person) == 1

    async def queue_a_message(session: AsyncSession) -> None:
        person = await people.person_by_identity(session, "telegram", str(karim.id))
        assert person is not None
        await outbox.enqueue_one(
            session,
            channel="telegram",
            chat_id=str(karim.id),
            payload={"text": "later"},
            priority=Priority.BROADCAST,
            person_id=person.id,
            at=utcnow() + timedelta(days=1),
        )

    await in_transaction(bot, queue_a_message)
    karim.send("/forget")
    karim.tap("Yes, erase everything", await karim.next_message())
    goodbye = await karim.next_message()
    assert "/start" in (goodbye.text or "")
    for model in (Person, Identity, Membership, Conversation, RoleGrant, OutboxMessage):
        assert await count_rows(bot, model) == 0, model

    karim.send("/mydata")
    assert (await karim.next_message()).text == "We keep nothing about you."


async def test_forget_also_removes_a_staff_role(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    from storage.queries import people

    async def grant(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await people.grant_role(session, stored, "telegram", "3004", Role.COORDINATOR)

    await in_transaction(bot, grant)
    coordinator = emulator.resident(3004, language_code="en")
    await onboard(coordinator, EN)
    coordinator.send("/forget")
    coordinator.tap("Yes, erase everything", await coordinator.next_message())
    await coordinator.next_message()
    assert await count_rows(bot, RoleGrant) == 0


async def test_help_depends_on_the_role_granted_from_the_command_line(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, database_url: str
) -> None:
    resident = emulator.resident(3005, language_code="en")
    await onboard(resident, EN)
    resident.send("/help")
    help_for_resident = (await resident.next_message()).text or ""
    assert "/mydata" in help_for_resident
    assert "coordinator" not in help_for_resident

    code, out, err = await run_cli(
        "role", "grant", "quartier-nord", "3005", "coordinator", env={"DATABASE_URL": database_url}
    )
    assert code == 0, err
    assert "coordinator" in out

    resident.send("/help")
    help_for_coordinator = (await resident.next_message()).text or ""
    assert "You are a coordinator of Conseil citoyen Quartier Nord." in help_for_coordinator


async def test_admins_from_settings_are_told_so(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    await start_bot(admin_telegram_ids="3006")
    admin = emulator.resident(3006, language_code="en")
    await onboard(admin, EN)
    admin.send("/help")
    assert "You are an administrator of this bot." in ((await admin.next_message()).text or "")


async def test_command_menu_is_published_in_every_language(
    bot: CoupDePouce, emulator: BotApiEmulator
) -> None:
    calls = emulator.calls_to("setMyCommands")
    languages = {call.params.get("language_code") for call in calls}
    assert languages == {None, "fr", "en", "ar"}
    english = next(call for call in calls if call.params.get("language_code") == "en")
    names = [command["command"] for command in english.params["commands"]]
    assert {"start", "help", "language", "mydata", "forget"} <= set(names)


async def test_forget_leaves_nothing_in_the_sqlite_files(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, database_url: str
) -> None:
    """Deleted rows are overwritten (secure_delete) and the write-ahead log, which still
    holds the pages as they were, is checkpointed and emptied after the erasure."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the files of a SQLite database")
    marker = "Zéphyrine-Quillebeuf"
    files = [Path(make_url(database_url).database or "")]
    files.append(files[0].with_name(files[0].name + "-wal"))

    def traces() -> int:
        return sum(path.read_bytes().count(marker.encode()) for path in files if path.exists())

    zephyrine = emulator.resident(3004, first_name=marker, language_code="en")
    await onboard(zephyrine, EN)
    assert traces() > 0  # the test can see it
    zephyrine.send("/forget")
    zephyrine.tap("Yes, erase everything", await zephyrine.next_message())
    assert "/start" in ((await zephyrine.next_message()).text or "")
    assert traces() == 0


PERSON_COLUMNS = {"person_id", "created_by", "started_by", "requested_by", "chat_id", "external_id"}


def test_every_table_about_a_person_is_declared_by_a_capability() -> None:
    """A new table (or column) that points to a person must be declared by the capability
    that owns it, so /mydata shows it; this walks the models' foreign keys and the columns
    that name a person or a chat."""
    declared = set(CORE_TABLES) | {
        table for flow in FLOWS for data in flow.personal_data for table in data.tables
    }
    about_people = {
        table.name
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name in PERSON_COLUMNS
        or any(key.column.table.name == "persons" for key in column.foreign_keys)
    }
    assert about_people - declared == set()
    assert declared - {table.name for table in Base.metadata.sorted_tables} == set()  # no typo


async def kept_for_the_test(_session: AsyncSession, person: Person) -> dict[str, str]:
    return {"note": f"something about {person.first_name}"}


def said_for_the_test(_t: Translator, kept: dict[str, str]) -> str:
    return "S" + kept["note"][1:]


TEST_CAPABILITY = Flow(
    name="test_capability",
    personal_data=[
        PersonalData("test_capability", ("persons",), kept_for_the_test, said_for_the_test)
    ],
)


async def test_a_capability_shows_what_it_keeps_in_mydata_by_declaring_it(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    await start_bot(flows=[*FLOWS, TEST_CAPABILITY])
    amina = emulator.resident(3005, first_name="Amina", language_code="fr")
    await onboard(amina)
    amina.send("/mydata")
    sent = await amina.next_message()
    assert sent.document is not None
    data = json.loads(sent.document[1])
    assert data["test_capability"] == {"note": "something about Amina"}
    # In the chat, a few lines the person can read, in French, the capability's among them.
    assert (sent.plain_text or "").splitlines() == [
        FR._("Here is everything we keep about you."),
        "• "
        + FR._("Your first name and language: {name}, {language}").format(
            name="Amina", language="Français"
        ),
        "• " + FR._("How we reach you: {channels}").format(channels="Telegram"),
        "• "
        + FR._("Your councils: {councils}").format(
            councils=FR._("{council} (since {date})").format(
                council=council.name, date=FR.day(utcnow(), council.timezone, format="long")
            )
        ),
        "• Something about Amina",
    ]
    # And what the shipped capabilities declare is there too, empty for a newcomer.
    for key in ("meetings", "consultations", "talent_directory", "call_answers", "dashboard"):
        assert key in data, key


def test_a_key_declared_twice_stops_the_engine() -> None:
    twice = Flow(name="again", personal_data=[PersonalData("meetings", (), kept_for_the_test)])
    with pytest.raises(ValueError, match="declared twice"):
        Engine([*FLOWS, twice], async_sessionmaker())
