"""Broadcasts through the outbox: at Telegram's pace, each message once, nothing lost,
the coordinator kept informed, and residents who said STOP left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.dispatcher import Limits
from flows.broadcasts import service as broadcasts
from flows.broadcasts.quiet import is_quiet, next_allowed_at
from flows.engine import Reply
from flows.i18n import Translator
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Council,
    OutboxMessage,
    OutboxStatus,
    PersonStatus,
    Priority,
    Role,
)
from storage.queries import outbox, people
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator
from tests.factories import add_residents
from tests.helpers import AR, EN, FR, onboard

FAST = Limits(report_every=0.2, record_interval=0.02, poll_interval=0.05, retry_base=0.05)


def hello(t: Translator) -> Reply:
    return Reply(t._("Hello! Send /help to see what I can do."))


async def broadcast_to_members(
    app: CoupDePouce, council: Council, *, urgent: bool = False, report_chat: int | None = None
) -> int:
    """Start a broadcast to the council's members, as a flow would; return its id."""

    async def start(session: AsyncSession) -> int:
        stored = await session.get_one(Council, council.id)
        broadcast = await broadcasts.start_broadcast(
            session,
            council=stored,
            kind="test",
            audience=broadcasts.members(stored),
            render=hello,
            urgent=urgent,
            report_to=broadcasts.ReportTo("telegram", str(report_chat), "en")
            if report_chat
            else None,
        )
        return broadcast.id

    broadcast_id: int = await in_transaction(app, start)
    app.dispatcher.wake()
    return broadcast_id


async def residents(
    app: CoupDePouce, emulator: BotApiEmulator, council: Council, ids: range
) -> None:
    for telegram_id in ids:
        emulator.resident(telegram_id, language_code="fr")

    async def add(session: AsyncSession) -> None:
        await add_residents(
            session,
            await session.get_one(Council, council.id),
            list(ids),
            locales=("fr", "en", "ar"),
        )

    await in_transaction(app, add)


async def statuses(app: CoupDePouce, broadcast_id: int) -> dict[OutboxStatus, int]:
    async def run(session: AsyncSession) -> dict[OutboxStatus, int]:
        rows = await session.scalars(
            select(OutboxMessage.status).where(OutboxMessage.broadcast_id == broadcast_id)
        )
        counted: dict[OutboxStatus, int] = {}
        for status in rows:
            counted[status] = counted.get(status, 0) + 1
        return counted

    result: dict[OutboxStatus, int] = await in_transaction(app, run)
    return result


async def until_finished(app: CoupDePouce, broadcast_id: int, within: float = 20) -> Broadcast:
    deadline = datetime.now(UTC) + timedelta(seconds=within)
    while datetime.now(UTC) < deadline:
        broadcast = await in_transaction(app, lambda s: s.get(Broadcast, broadcast_id))
        if broadcast.finished_at is not None:
            assert isinstance(broadcast, Broadcast)
            return broadcast
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"broadcast {broadcast_id} not finished: {await statuses(app, broadcast_id)}"
    )


def delivered_to(emulator: BotApiEmulator, chat_id: int, text: str) -> int:
    return sum(1 for message in emulator.messages(chat_id) if message.text == text)


async def test_each_resident_gets_the_message_once_in_their_language(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    await residents(app, emulator, council, range(10_001, 10_031))
    broadcast_id = await broadcast_to_members(app, council)
    broadcast = await until_finished(app, broadcast_id)
    assert (broadcast.audience_size, broadcast.sent, broadcast.failed) == (30, 30, 0)
    for index, chat_id in enumerate(range(10_001, 10_031)):
        t = Translator(("fr", "en", "ar")[index % 3])
        assert delivered_to(emulator, chat_id, hello(t).text) == 1, chat_id


async def test_the_rate_limits_are_respected(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    emulator.enforce_limits(global_per_second=20, per_chat_per_second=1)
    app = await start_bot(limits=FAST, dispatch_rate=20)
    await residents(app, emulator, council, range(11_001, 11_061))
    broadcast_id = await broadcast_to_members(app, council)
    await until_finished(app, broadcast_id)
    assert emulator.flood_refusals == []
    assert emulator.max_rate(window=1.0) <= 20 * 1.1
    assert len(emulator.delivered_texts()) == 60


async def test_a_429_is_waited_out_and_the_message_still_goes_once(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    await residents(app, emulator, council, range(12_001, 12_011))
    emulator.fail(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
        chat_id=12_005,
    )
    broadcast_id = await broadcast_to_members(app, council)
    broadcast = await until_finished(app, broadcast_id)
    assert broadcast.sent == 10
    assert delivered_to(emulator, 12_005, hello(FR).text) == 1
    refused, accepted = [
        c for c in emulator.calls_to("sendMessage") if c.params["chat_id"] == 12_005
    ]
    assert accepted.at - refused.at >= 0.95


async def test_a_blocked_resident_is_marked_and_counted(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    coordinator = emulator.resident(12_999, language_code="en")
    app = await start_bot(limits=FAST)
    await residents(app, emulator, council, range(13_001, 13_006))
    emulator.block(13_003)
    broadcast_id = await broadcast_to_members(app, council, report_chat=coordinator.id)
    broadcast = await until_finished(app, broadcast_id)
    assert (broadcast.sent, broadcast.unreachable) == (4, 1)

    async def status_of_blocked(session: AsyncSession) -> PersonStatus:
        person = await people.person_by_identity(session, "telegram", "13003")
        assert person is not None
        return person.status

    assert await in_transaction(app, status_of_blocked) == PersonStatus.UNREACHABLE
    report = await coordinator.wait_for(lambda m: (m.text or "").startswith("Done"))
    assert report.text == "Done: sent 4 of 5. — 1 unreachable"
    second = await broadcast_to_members(app, council)
    assert (await until_finished(app, second)).audience_size == 4  # no longer queued for them


async def test_a_bad_request_fails_once_without_retrying(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    await residents(app, emulator, council, range(14_001, 14_004))
    emulator.fail(
        "sendMessage",
        status=400,
        description="Bad Request: message is too long",
        chat_id=14_002,
        times=5,
    )
    broadcast_id = await broadcast_to_members(app, council)
    broadcast = await until_finished(app, broadcast_id)
    assert (broadcast.sent, broadcast.failed) == (2, 1)
    assert len([c for c in emulator.calls_to("sendMessage") if c.params["chat_id"] == 14_002]) == 1


async def test_network_errors_are_retried_with_backoff(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=dataclasses.replace(FAST, retry_base=0.2, chat_interval=0))
    await residents(app, emulator, council, range(15_001, 15_004))
    emulator.fail("sendMessage", status=502, description="Bad Gateway", chat_id=15_002, times=3)
    broadcast_id = await broadcast_to_members(app, council)
    broadcast = await until_finished(app, broadcast_id)
    assert broadcast.sent == 3
    tries = [c for c in emulator.calls_to("sendMessage") if c.params["chat_id"] == 15_002]
    assert len(tries) == 4
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tries)]
    # Backing off: at least 0.2, 0.4, 0.8 s (a busy machine may stretch any of them, so
    # each is held to its own floor rather than compared with the one before).
    assert [gap >= 0.2 * 2**n * 0.95 for n, gap in enumerate(gaps)] == [True] * 3, gaps


async def test_stop_in_the_middle_of_a_flow_is_never_taken_as_an_answer(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    amina = emulator.resident(16_001, language_code="fr")
    await onboard(amina, FR)
    amina.send("/forget")
    await amina.next_message()  # "Erase everything?" with buttons
    amina.send("Arrêt !")
    stopped = await amina.next_message()
    assert "/start" in (stopped.text or "")
    person = await in_transaction(app, lambda s: people.person_by_identity(s, "telegram", "16001"))
    assert person is not None and person.status == PersonStatus.STOPPED
    broadcast_id = await broadcast_to_members(app, council)
    assert (await until_finished(app, broadcast_id)).audience_size == 0
    assert delivered_to(emulator, amina.id, hello(FR).text) == 0

    amina.send("/start")
    await amina.next_message()
    broadcast_id = await broadcast_to_members(app, council)
    assert (await until_finished(app, broadcast_id)).sent == 1
    assert delivered_to(emulator, amina.id, hello(FR).text) == 1


@pytest.mark.parametrize("word", ["STOP", "stop", "ARRET", "Arrêt", "توقف", "إيقاف"])
async def test_stop_words_in_every_language(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council, word: str
) -> None:
    app = await start_bot(limits=FAST)
    sam = emulator.resident(16_100, language_code="en")
    await onboard(sam, EN)
    sam.send(word)
    assert (await sam.next_message()).text == (
        "Done: you will receive no more messages from the council. "
        "Send /start to receive them again."
    )
    person = await in_transaction(app, lambda s: people.person_by_identity(s, "telegram", "16100"))
    assert person is not None and person.status == PersonStatus.STOPPED


async def test_stop_cancels_what_is_already_queued(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST, dispatch_rate=2)
    await residents(app, emulator, council, range(17_001, 17_011))
    last = emulator.resident(17_010, language_code="fr")
    broadcast_id = await broadcast_to_members(app, council)
    last.send("STOP")
    await last.next_message()
    broadcast = await until_finished(app, broadcast_id, within=30)
    assert delivered_to(emulator, last.id, hello(FR).text) + broadcast.cancelled == 1


def test_quiet_hours_span_midnight() -> None:
    start, end = time(21, 0), time(8, 0)
    assert is_quiet(start, end, time(22, 30))
    assert is_quiet(start, end, time(7, 59))
    assert not is_quiet(start, end, time(8, 0))
    assert not is_quiet(start, end, time(12, 0))
    assert not is_quiet(None, None, time(23, 0))
    paris = ZoneInfo("Europe/Paris")
    late = datetime(2026, 12, 5, 22, 15, tzinfo=paris).astimezone(UTC)
    assert next_allowed_at(start, end, "Europe/Paris", late) == datetime(
        2026, 12, 6, 8, 0, tzinfo=paris
    )
    noon = datetime(2026, 12, 5, 12, 0, tzinfo=paris).astimezone(UTC)
    assert next_allowed_at(start, end, "Europe/Paris", noon) == noon


async def test_a_broadcast_started_at_night_waits_but_urgent_ones_go(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    coordinator = emulator.resident(18_999, language_code="en")
    app = await start_bot(limits=FAST)
    await residents(app, emulator, council, range(18_001, 18_004))
    local_now = datetime.now(ZoneInfo(council.timezone))

    async def make_it_night(session: AsyncSession) -> None:
        stored = await session.get(Council, council.id)
        assert stored is not None
        stored.quiet_start = (local_now - timedelta(hours=1)).time().replace(microsecond=0)
        stored.quiet_end = (local_now + timedelta(hours=2)).time().replace(microsecond=0)

    await in_transaction(app, make_it_night)
    waiting = await broadcast_to_members(app, council, report_chat=coordinator.id)
    report = await coordinator.wait_for(lambda m: (m.text or "").startswith("Quiet hours"))
    assert "sending starts at" in (report.text or "")
    urgent = await broadcast_to_members(app, council, urgent=True)
    assert (await until_finished(app, urgent)).sent == 3
    assert (await statuses(app, waiting)) == {OutboxStatus.PENDING: 3}


async def test_a_coordinator_announces_and_follows_the_progress(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    coordinator = emulator.resident(19_001, language_code="en")

    async def grant(session: AsyncSession) -> None:
        await people.grant_role(
            session,
            await session.get_one(Council, council.id),
            "telegram",
            "19001",
            Role.COORDINATOR,
        )

    await in_transaction(app, grant)
    await onboard(coordinator, EN)
    neighbours = [
        emulator.resident(19_100 + i, language_code=lang) for i, lang in enumerate(["fr", "ar"])
    ]
    for neighbour, t in zip(neighbours, [FR, AR], strict=True):
        await onboard(neighbour, t)

    coordinator.send("/announce")
    await coordinator.next_message()
    coordinator.send("Réunion publique samedi à 14 h, salle des fêtes.")
    preview = await coordinator.next_message()
    assert "3 residents" in (preview.text or "")
    coordinator.tap("Send", preview)
    assert (await coordinator.next_message()).text == "On its way. I will show the progress here."
    done = await coordinator.wait_for(lambda m: (m.text or "").startswith("Done"))
    assert done.text == "Done: sent 3 of 3."
    french = await neighbours[0].wait_for(lambda m: "Réunion publique" in (m.text or ""))
    assert (french.text or "").startswith("📣")
    assert "Conseil citoyen Quartier Nord" in (french.text or "")


async def test_residents_cannot_announce(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    sam = emulator.resident(19_500, language_code="en")
    await onboard(sam, EN)
    sam.send("/announce")
    assert (
        await sam.next_message()
    ).text == "This command is for council coordinators and organisers."
    assert await in_transaction(app, lambda s: s.scalar(select(Broadcast.id))) is None


async def test_nothing_is_sent_twice_across_a_restart(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    first = await start_bot(limits=FAST, dispatch_rate=40)
    await residents(first, emulator, council, range(20_001, 20_101))
    broadcast_id = await broadcast_to_members(first, council)
    await emulator.wait_until(lambda: len(emulator.delivered_texts()) >= 30 or None, timeout=10)
    await first.stop()
    second = await start_bot(limits=FAST, dispatch_rate=200)
    await until_finished(second, broadcast_id)
    texts = emulator.delivered_texts()
    assert len(texts) == 100
    assert len(set(texts)) == 100  # one per chat


async def test_a_tap_is_answered_during_a_broadcast(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    emulator.enforce_limits(global_per_second=30, per_chat_per_second=1)
    app = await start_bot(limits=FAST)
    await residents(app, emulator, council, range(21_001, 21_301))
    await broadcast_to_members(app, council)
    await emulator.wait_until(lambda: len(emulator.delivered_texts()) >= 20 or None, timeout=10)
    sam = emulator.resident(21_999, language_code="en")
    sam.send("/help")
    reply = await sam.next_message(timeout=5)
    assert (reply.text or "").startswith("Send /start") or "/start" in (reply.text or "")
    assert len(emulator.delivered_texts()) < 300  # the broadcast was still going
    assert emulator.flood_refusals == []


async def test_blocking_the_bot_marks_the_person_and_unblocking_restores_them(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST)
    sam = emulator.resident(22_001, language_code="en")
    await onboard(sam, EN)

    def member_update(status: str) -> dict[str, object]:
        bot_user = {"id": emulator.bot_id, "is_bot": True, "first_name": "Coup de pouce"}
        return {
            "my_chat_member": {
                "chat": {"id": sam.id, "type": "private", "first_name": sam.first_name},
                "from": sam.user,
                "date": 1_800_000_000,
                "old_chat_member": {"status": "member", "user": bot_user},
                "new_chat_member": {"status": status, "user": bot_user}
                | ({"until_date": 0} if status == "kicked" else {}),
            }
        }

    async def status() -> PersonStatus:
        person = await in_transaction(
            app, lambda s: people.person_by_identity(s, "telegram", "22001")
        )
        assert person is not None
        return PersonStatus(person.status)

    emulator.push_update(member_update("kicked"))
    await emulator.wait_until_consumed()
    assert await status() == PersonStatus.UNREACHABLE
    emulator.push_update(member_update("member"))
    await emulator.wait_until_consumed()
    assert await status() == PersonStatus.ACTIVE


async def test_a_group_gets_at_most_its_pace(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=dataclasses.replace(FAST, group_interval=0.5))
    group = emulator.group(-100_777)

    async def queue(session: AsyncSession) -> None:
        for number in range(4):
            await outbox.enqueue_one(
                session,
                channel="telegram",
                chat_id=str(group.id),
                payload={"text": f"Résultats {number}"},
                priority=Priority.REPORT,
            )

    await in_transaction(app, queue)
    app.dispatcher.wake()
    await emulator.wait_until(lambda: len(group.inbox) == 4 or None, timeout=10)
    times = [c.at for c in emulator.calls_to("sendMessage") if c.params["chat_id"] == group.id]
    assert [m.text for m in group.inbox] == [f"Résultats {n}" for n in range(4)]
    assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.45


async def test_paid_broadcasts_ask_telegram_for_the_higher_rate(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=dataclasses.replace(FAST, paid_broadcast=True))
    await residents(app, emulator, council, range(23_001, 23_003))
    await until_finished(app, await broadcast_to_members(app, council))
    sends = emulator.calls_to("sendMessage")
    assert [c.params.get("allow_paid_broadcast") for c in sends] == [True, True]


async def test_the_coordinator_stops_a_broadcast_from_its_report(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST, dispatch_rate=5)
    coordinator = emulator.resident(24_001, language_code="en")

    async def grant(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await people.grant_role(session, stored, "telegram", "24001", Role.COORDINATOR)

    await in_transaction(app, grant)
    await onboard(coordinator, EN)
    await residents(app, emulator, council, range(24_101, 24_141))
    broadcast_id = await broadcast_to_members(app, council, report_chat=coordinator.id)
    running = await coordinator.wait_for(lambda m: (m.text or "").startswith("Sent"))
    answered = len(coordinator.answered_callbacks)
    coordinator.tap("⏹ Stop sending", running)
    await emulator.wait_until(lambda: len(coordinator.answered_callbacks) > answered or None, 5)
    assert (
        coordinator.answered_callbacks[-1].params["text"] == "Stopped: nothing more will be sent."
    )
    broadcast = await until_finished(app, broadcast_id)
    assert broadcast.status == BroadcastStatus.INTERRUPTED
    final = await coordinator.wait_for(lambda m: (m.text or "").startswith("Stopped"))
    assert final.buttons == []
    assert broadcast.sent + broadcast.cancelled == 41  # the coordinator is a member too
    assert broadcast.cancelled > 0
    greetings = {hello(Translator(locale)).text for locale in ("fr", "en", "ar")}
    assert sum(text in greetings for _chat, text in emulator.delivered_texts()) == broadcast.sent


async def test_a_forged_stop_button_for_another_council_changes_nothing(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=FAST, dispatch_rate=5)
    await residents(app, emulator, council, range(25_101, 25_121))
    broadcast_id = await broadcast_to_members(app, council)
    intruder = emulator.resident(25_001, language_code="en")
    await onboard(intruder, EN)
    answered = len(intruder.answered_callbacks)
    intruder.tap_data(f"bstop:{broadcast_id}", intruder.inbox[0])
    await emulator.wait_until(lambda: len(intruder.answered_callbacks) > answered or None, 5)
    assert intruder.answered_callbacks[-1].params["text"] == "Sorry, this button does not work."
    broadcast = await in_transaction(app, lambda s: s.get(Broadcast, broadcast_id))
    assert broadcast.status != BroadcastStatus.INTERRUPTED


async def test_a_large_broadcast_can_be_smoothed_over_a_duration(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(limits=dataclasses.replace(FAST, chat_interval=0), dispatch_rate=100)
    await residents(app, emulator, council, range(26_001, 26_021))

    async def start(session: AsyncSession) -> int:
        stored = await session.get_one(Council, council.id)
        broadcast = await broadcasts.start_broadcast(
            session,
            council=stored,
            kind="test",
            audience=broadcasts.members(stored),
            render=hello,
            spread=timedelta(seconds=2),
        )
        assert broadcast.max_rate == 10  # 20 people over 2 seconds
        return broadcast.id

    broadcast_id = await in_transaction(app, start)
    app.dispatcher.wake()
    await until_finished(app, broadcast_id)
    times = sorted(call.at for call in emulator.received("sendMessage"))
    assert times[-1] - times[0] >= 1.6  # not at the 100/s the channel allows
    assert emulator.max_rate(window=1.0) <= 12
