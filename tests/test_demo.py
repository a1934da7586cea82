"""`coupdepouce demo`: the seeded council, and what a newcomer and the coordinator do in it,
in the web chat."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.demo import (
    DEMO_FLOWS,
    DEMO_SLUG,
    RESIDENTS,
    RSVPS,
    let_in_as_coordinator,
    seed_council,
)
from storage.models import (
    Ballot,
    Call,
    Consultation,
    MeetingInvite,
    Person,
    Rsvp,
    TalentProfile,
    WebMessage,
    utcnow,
)
from tests.conftest import StartBot, in_transaction
from tests.helpers import FR
from tests.test_broadcast import FAST
from tests.test_webchat import eventually


class Chat:
    """The chat page without a browser: sends what a person types or taps, keeps the buttons
    of everything shown, and acknowledges the council's messages like the page does."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.buttons: dict[str, str] = {}
        self.shown: list[dict[str, Any]] = []  # every reply and message, in order

    async def say(self, text: str) -> list[dict[str, Any]]:
        await self.socket.send_json({"type": "text", "text": text})
        return await self.outcome()

    async def tap(self, label: str) -> list[dict[str, Any]]:
        data = self.buttons.get(label)
        assert data is not None, f"no button {label!r} among {sorted(self.buttons)}"
        await self.socket.send_json({"type": "choice", "data": data})
        return await self.outcome()

    async def outcome(self) -> list[dict[str, Any]]:
        while True:
            received = await self.socket.receive_json(timeout=10)
            if received["type"] == "history":
                self.show(received["messages"])
            elif received["type"] == "message":
                self.show([received])
                await self.socket.send_json({"type": "ack", "id": received["id"]})
            elif received["type"] == "outcome":
                self.show(received["replies"])
                return list(received["replies"])

    async def mailed(self) -> dict[str, Any]:
        received = await self.socket.receive_json(timeout=10)
        if received["type"] == "history":
            self.show(received["messages"])
            received = await self.socket.receive_json(timeout=10)
        assert received["type"] == "message", received
        self.show([received])
        await self.socket.send_json({"type": "ack", "id": received["id"]})
        return dict(received)

    def show(self, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            self.shown.append(reply)
            for row in reply.get("choices", ()):
                for choice in row:
                    self.buttons[choice["label"]] = choice["data"]


def texts(replies: list[dict[str, Any]]) -> str:
    return "\n".join(reply["text"] for reply in replies)


async def seeded(app: CoupDePouce) -> None:
    async def seed(session: AsyncSession) -> None:
        await seed_council(session, utcnow())

    await in_transaction(app, seed)


async def count(app: CoupDePouce, query: Any) -> int:
    async def run(session: AsyncSession) -> int:
        return int(await session.scalar(query) or 0)

    result: int = await in_transaction(app, run)
    return result


async def test_the_demo_council_has_residents_a_meeting_and_an_open_consultation(
    bot: CoupDePouce,
) -> None:
    await seeded(bot)
    assert await count(bot, select(func.count()).select_from(Person)) == len(RESIDENTS) + 1
    assert await count(bot, select(func.count()).select_from(TalentProfile)) == len(RESIDENTS)
    assert await count(bot, select(func.count()).select_from(MeetingInvite)) == len(RESIDENTS) + 1
    consultation = select(Consultation.audience_size).where(Consultation.status == "open")
    assert await count(bot, consultation) == len(RESIDENTS) + 1
    answered = select(func.count()).select_from(Ballot).where(Ballot.answered != 0)
    assert await count(bot, answered) == 8


async def test_a_newcomer_joins_the_directory_and_answers_the_meeting_and_the_consultation(
    start_bot: StartBot,
) -> None:
    bot = await start_bot(flows=DEMO_FLOWS, limits=FAST)
    await seeded(bot)
    base = f"http://127.0.0.1:{bot.port}"
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "fr"}
    ) as client:
        await client.get(f"{base}/")
        async with client.ws_connect(f"{base}/chat/ws") as socket:
            chat = Chat(socket)
            await chat.say(f"/start {DEMO_SLUG}")
            joined = await chat.tap(FR._("✅ Yes, I agree"))
            # The meeting and the consultation that were sent before they joined reach them too.
            assert "Réunion publique : la fête de quartier" in texts(joined)
            assert "La fête de quartier" in texts(joined)
            [calendar] = [r["attachment"] for r in joined if r.get("attachment")]
            assert calendar["filename"].endswith(".ics")
            await chat.tap("✅ " + FR._("I'm coming"))
            invites = select(func.count()).where(MeetingInvite.rsvp == Rsvp.COMING)
            coming = sum(1 for answer, _guests, _needs in RSVPS if answer is Rsvp.COMING)
            assert await count(bot, invites) == coming + 1
            question = await chat.tap("✏️ " + FR._("Answer"))
            assert "Quel jour préférez-vous ?" in texts(question)
            await chat.tap("Dimanche")
            await chat.tap("4")
            thanks = await chat.tap(FR._("Skip") + " ⏭")
            finished = await chat.tap("Gare")  # where they live, asked once at the end
            assert thanks
            saved = FR._(
                "Thank you! Your answers are saved. You can change them until {date}: "
                "tap “Answer” again."
            )
            assert saved.split("{date}")[0] in texts(finished)
            ballots = select(func.count()).select_from(Ballot).where(Ballot.answered != 0)
            assert await count(bot, ballots) == 9
            # The demo council vouched for the visitor as they joined: their answers count.
            counted = select(func.count()).where(Ballot.answered != 0, Ballot.verified.is_(True))
            assert await count(bot, counted) == 9
            assert "/verify" not in texts(finished)
            # They count in the consultation's audience, so the response rate stays true.
            audience = select(Consultation.audience_size)
            assert await count(bot, audience) == len(RESIDENTS) + 2
            # And they join the directory.
            await chat.say("/talents")
            await chat.tap(FR._("Home and repairs"))
            await chat.tap(FR._("Cooking"))
            assert await count(bot, select(func.count()).select_from(TalentProfile)) >= len(
                RESIDENTS
            )


async def test_the_coordinator_sends_a_call_and_sees_the_results(start_bot: StartBot) -> None:
    bot = await start_bot(limits=FAST)
    await seeded(bot)
    let_in_as_coordinator(bot)
    base = f"http://127.0.0.1:{bot.port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{base}/chat/as/coordinator") as page:
            assert page.status == 200 and '<html lang="fr"' in await page.text()
        async with client.ws_connect(f"{base}/chat/ws") as socket:
            chat = Chat(socket)
            await chat.say("/call")
            await chat.say("Montage des stands")
            await chat.say("Monter les stands samedi matin, place du marché.")
            await chat.tap(FR._("Home and repairs"))
            await chat.tap(FR._("DIY and repairs"))
            await chat.tap("◀ " + FR._("Back"))
            await chat.tap("✅ " + FR._("Done"))
            await chat.tap(FR._("Weekends"))
            await chat.tap("✅ " + FR._("Done"))
            await chat.tap(FR.number(2))
            preview = await chat.tap(FR._("In a week"))
            assert "Montage des stands" in texts(preview)
            await chat.tap(FR._("Send"))
            results = await chat.say("/results")
            assert "La fête de quartier" in texts(results)
            shown = await chat.tap("📊 " + FR._("See the results"))
            files = [r["attachment"]["filename"] for r in shown if r.get("attachment")]
            assert any(name.endswith(".png") for name in files)
            assert any(name.endswith(".csv") for name in files)
    assert await count(bot, select(func.count()).select_from(Call)) == 1
    # Bruno and Hamid (DIY, weekends) are in the directory as web chat residents: the call
    # waits in their mailbox for their next visit.
    calls = (
        select(func.count())
        .select_from(WebMessage)
        .where(WebMessage.payload["text"].as_string().contains("Montage des stands"))
    )
    await eventually(lambda: reached(bot, calls, 2))


async def reached(app: CoupDePouce, query: Any, at_least: int) -> bool:
    return await count(app, query) >= at_least
