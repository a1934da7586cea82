"""What the bot sends to a chat goes in order, whoever sends it (a reply, a queued message),
and chats do not wait for one another."""

from __future__ import annotations

import asyncio

from bot.channels.lanes import ChatLanes


async def test_a_queued_message_waits_for_the_replies_in_hand_of_its_chat_only() -> None:
    lanes = ChatLanes("test")
    seen: list[str] = []
    release = asyncio.Event()

    async def slow_reply() -> None:
        seen.append("reply starts")
        await release.wait()  # a slow round trip to the messenger
        seen.append("reply sent")

    async def queued(name: str) -> str:
        seen.append(name)
        return name

    lanes.after("amina", slow_reply)
    for_amina = asyncio.create_task(lanes.run("amina", lambda: queued("amina's queued message")))
    for_bilal = await lanes.run("bilal", lambda: queued("bilal's queued message"))
    assert for_bilal == "bilal's queued message"  # not held up by amina's slow reply
    assert not for_amina.done()
    release.set()
    assert await for_amina == "amina's queued message"
    assert seen == [
        "reply starts",
        "bilal's queued message",
        "reply sent",
        "amina's queued message",
    ]
    await lanes.drain()
    assert len(lanes) == 0


async def test_a_failure_in_a_lane_reaches_its_caller_and_the_lane_goes_on() -> None:
    lanes = ChatLanes("test")

    async def refused() -> str:
        raise RuntimeError("refused")

    failed = asyncio.create_task(lanes.run("amina", refused))
    after = asyncio.create_task(lanes.run("amina", lambda: asyncio.sleep(0, "next")))
    [outcome] = await asyncio.gather(failed, return_exceptions=True)
    assert isinstance(outcome, RuntimeError)
    assert str(outcome) == "refused"
    assert await after == "next"
