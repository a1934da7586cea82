"""The bot as a real process, killed with SIGKILL in the middle of a batch of 100 updates and
started again: every update is handled exactly once (the batch's transaction never
committed, so the updates, not yet confirmed to Telegram, come again and are handled then),
and every resident is answered. Stopped with SIGTERM instead, it finishes the batch in hand
and answers it before it exits."""

from __future__ import annotations

import asyncio
import collections
import signal

from sqlalchemy import func, select

from storage import db
from storage.models import Conversation, Council, ProcessedEvent
from tests.emulator import BotApiEmulator, FakeUser
from tests.test_dispatcher_processes import start_process

RESIDENTS = 100
CONSENT = "Bonjour"  # how the consent question starts, in French


async def handled(database_url: str) -> tuple[int, dict[str, int]]:
    """Processed update ids, and each conversation's question number."""
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            ids = await session.scalar(select(func.count()).select_from(ProcessedEvent))
            rows = await session.execute(select(Conversation.external_id, Conversation.prompt))
            return int(ids or 0), {chat: prompt for chat, prompt in rows}
    finally:
        await engine.dispose()


def waiting_newcomers(emulator: BotApiEmulator, first_id: int) -> list[FakeUser]:
    """RESIDENTS newcomers whose /start waits in getUpdates."""
    people = [emulator.resident(first_id + n, first_name=f"R{n}") for n in range(RESIDENTS)]
    for person in people:
        person.send("/start quartier-nord")
    return people


def served(emulator: BotApiEmulator) -> bool:
    """getUpdates handed the bot a batch."""
    return any(
        call.response and call.response.get("result") for call in emulator.calls_to("getUpdates")
    )


async def test_killed_mid_batch_then_restarted_handles_every_update_once(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    people = waiting_newcomers(emulator, 81_000)
    first = await start_process(database_url, emulator)
    try:
        await emulator.wait_until(lambda: served(emulator), 30)  # the batch in the bot's hands
    finally:
        first.kill()  # SIGKILL, while its flows run: nothing is committed or sent
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    assert await handled(database_url) == (0, {}), "the batch was done before the kill"
    assert not emulator.calls_to("sendMessage")

    second = await start_process(database_url, emulator)
    try:

        def answered() -> bool:
            return all(any(CONSENT in (m.text or "") for m in p.inbox) for p in people)

        await emulator.wait_until(answered, 60)
        await emulator.wait_until_consumed(30)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = await second.communicate()
    assert second.returncode == 0, err.decode()
    ids, prompts = await handled(database_url)
    assert ids == RESIDENTS
    # Handled twice, a conversation would be at its second question.
    assert prompts == {str(person.id): 1 for person in people}
    sent = collections.Counter(chat for chat, _text in emulator.delivered_texts())
    assert sent == {person.id: 1 for person in people}


async def test_sigterm_mid_batch_finishes_the_batch_in_hand_and_answers_it(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    people = waiting_newcomers(emulator, 82_000)
    process = await start_process(database_url, emulator)
    await emulator.wait_until(lambda: served(emulator), 30)  # the batch in the bot's hands
    process.send_signal(signal.SIGTERM)  # as a supervisor stopping it
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    # The batch was finished before the process went: handled once, each resident answered.
    ids, prompts = await handled(database_url)
    assert ids == RESIDENTS
    assert prompts == {str(person.id): 1 for person in people}
    sent = collections.Counter(chat for chat, _text in emulator.delivered_texts())
    assert sent == {person.id: 1 for person in people}
