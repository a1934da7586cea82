"""The updates that come together are one unit of work: a getUpdates batch (or webhook calls
a few milliseconds apart) is handled in one transaction, with what its events need read once
for all of them; a flow that fails spoils only its own update."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine as SyncEngine
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import Command, Context, Flow, Next
from flows.registry import FLOWS
from storage.models import Conversation, Council, ProcessedEvent
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator, FakeUser, SentMessage
from tests.helpers import EN, onboard
from tests.test_webhook import WEBHOOK, post

CONSENT = "Bonjour"  # the consent question starts so, in French
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."


class Tally:
    """Statements and commits on every database engine, by the asyncio task that ran them."""

    def __init__(self) -> None:
        self.statements: collections.Counter[str] = collections.Counter()
        self.commits: collections.Counter[str] = collections.Counter()

    def statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements[_task()] += 1

    def commit(self, _conn: Any) -> None:
        self.commits[_task()] += 1


def _task() -> str:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return "-"
    return task.get_name() if task is not None else "-"


@contextmanager
def tally() -> Iterator[Tally]:
    counts = Tally()
    event.listen(SyncEngine, "before_cursor_execute", counts.statement)
    event.listen(SyncEngine, "commit", counts.commit)
    try:
        yield counts
    finally:
        event.remove(SyncEngine, "before_cursor_execute", counts.statement)
        event.remove(SyncEngine, "commit", counts.commit)


async def mark_then_fail(ctx: Context) -> Next:
    """A bug after the flow wrote something: what it wrote must go with it."""
    ctx.conversation.step = None
    ctx.conversation.data = {"chat": {"locale": "en"}}
    await ctx.session.execute(text("UPDATE councils SET name = 'Spoilt'"))
    raise RuntimeError("boom")


async def bad_sql(ctx: Context) -> Next:
    """A statement the database refuses (on PostgreSQL, the transaction is spoilt with it)."""
    await ctx.session.execute(text("SELECT * FROM no_such_table"))
    return None


async def dangle(ctx: Context) -> Next:
    """Leave the conversation pointing to nobody: the unit fails when it writes, in no flow."""
    ctx.conversation.person_id = 999_999_999
    ctx.conversation.data = {"chat": {"locale": "en"}}
    ctx.say("Left dangling.")
    return None


BROKEN = Flow(
    name="broken",
    commands=[
        Command("boom", mark_then_fail, "fail", needs_consent=False),
        Command("badsql", bad_sql, "fail", needs_consent=False),
        Command("dangle", dangle, "fail", needs_consent=False),
    ],
)


def newcomers(
    emulator: BotApiEmulator, first: int, count: int, language: str = "fr"
) -> list[FakeUser]:
    return [
        emulator.resident(first + n, first_name=f"R{n}", language_code=language)
        for n in range(count)
    ]


def starts(message: SentMessage, beginning: str) -> bool:
    return (message.text or "").startswith(beginning)


async def stored(app: Any) -> tuple[set[int], dict[str, int]]:
    """Processed update ids, and each stored conversation's prompt number by chat."""

    async def run(session: AsyncSession) -> tuple[set[int], dict[str, int]]:
        ids = set(await session.scalars(select(ProcessedEvent.event_id)))
        rows = await session.execute(select(Conversation.external_id, Conversation.prompt))
        return ids, {chat: prompt for chat, prompt in rows}

    result: tuple[set[int], dict[str, int]] = await in_transaction(app, run)
    return result


async def test_a_batch_of_updates_is_one_transaction(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    people = newcomers(emulator, 71_000, 40)
    ids = [person.send("/start quartier-nord") for person in people]  # waiting before the start
    with tally() as counts:
        app = await start_bot()
        for person in people:
            assert starts(await person.next_message(), CONSENT)
    assert counts.commits["telegram-polling"] == 1
    processed, prompts = await stored(app)
    assert set(ids) <= processed
    assert prompts == {str(person.id): 1 for person in people}


async def test_what_a_batch_needs_is_read_once_for_all_its_updates(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    people = newcomers(emulator, 74_000, 40)
    for person in people:
        person.send("/help")
    with tally() as counts:
        await start_bot()
        for person in people:
            assert starts(await person.next_message(), "Voici ce que vous pouvez faire")
    assert counts.commits["telegram-polling"] == 1
    # BEGIN (a statement on SQLite), the event ids recorded, the conversations, the persons,
    # the roles, the answers kept: the same statements for 40 updates as for one.
    assert counts.statements["telegram-polling"] <= 6, counts.statements


async def test_a_failing_flow_spoils_only_its_own_update(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    amina, bilal, chloe, dario, emma = newcomers(emulator, 72_000, 5, "en")
    sent = {
        amina: amina.send("/start quartier-nord"),
        bilal: bilal.send("/badsql"),
        chloe: chloe.send("/start quartier-nord"),
        dario: dario.send("/boom"),
        emma: emma.send("/help"),
    }
    app = await start_bot(flows=[*FLOWS, BROKEN])
    assert starts(await amina.next_message(), "Hello")
    assert (await bilal.next_message()).text == APOLOGY
    assert starts(await chloe.next_message(), "Hello")
    assert (await dario.next_message()).text == APOLOGY
    assert starts(await emma.next_message(), "Here is what you can do")
    processed, prompts = await stored(app)
    assert {sent[amina], sent[chloe], sent[emma]} <= processed
    assert not {sent[bilal], sent[dario]} & processed  # what failed kept nothing
    assert prompts == {str(amina.id): 1, str(chloe.id): 1}

    async def name(session: AsyncSession) -> str | None:
        return await session.scalar(select(Council.name).where(Council.id == council.id))

    assert await in_transaction(app, name) == council.name


async def test_a_unit_that_cannot_be_written_is_handled_event_by_event(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    amina, bilal, chloe = newcomers(emulator, 76_000, 3, "en")
    sent = {
        amina: amina.send("/start quartier-nord"),
        bilal: bilal.send("/dangle"),
        chloe: chloe.send("/help"),
    }
    app = await start_bot(flows=[*FLOWS, BROKEN])
    assert starts(await amina.next_message(), "Hello")
    assert (await bilal.next_message()).text == APOLOGY
    assert starts(await chloe.next_message(), "Here is what you can do")
    processed, prompts = await stored(app)
    assert {sent[amina], sent[chloe]} <= processed
    assert sent[bilal] not in processed
    assert prompts == {str(amina.id): 1}


async def test_webhook_calls_arriving_together_make_one_unit(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(**WEBHOOK)
    people = newcomers(emulator, 73_000, 30)
    updates = [emulator.take_update(person.send("/start quartier-nord")) for person in people]
    with tally() as counts:
        statuses = await asyncio.gather(*(post(app, update) for update in updates))
    assert statuses == [200] * len(updates)  # each answered once its unit committed
    units = counts.commits["telegram-webhook"]
    assert 1 <= units < len(updates) / 3, counts.commits
    for person in people:
        assert starts(await person.next_message(), CONSENT)
    _, prompts = await stored(app)
    assert prompts == {str(person.id): 1 for person in people}


async def test_what_an_update_answered_is_kept_until_the_person_is_forgotten(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot()
    nour = emulator.resident(75_001, first_name="Nour", language_code="en")
    await onboard(nour, EN)
    nour.send("/help")
    await nour.next_message()

    async def kept(session: AsyncSession) -> list[str]:
        rows = await session.scalars(
            select(ProcessedEvent.replies).where(ProcessedEvent.chat_id == str(nour.id))
        )
        return [reply["text"] for replies in rows for reply in replies or ()]

    assert any(
        text.startswith("Here is what you can do") for text in await in_transaction(app, kept)
    )
    nour.send("/forget")
    nour.tap("Yes, erase everything", await nour.next_message())
    await nour.next_message()
    assert await in_transaction(app, kept) == []  # nor the goodbye: nobody to keep it for
