"""The coordinators' dashboard over HTTP: sign-in by one-time link, sessions, CSRF, and
roles and councils checked on every page and export."""

from __future__ import annotations

import io
import re
from datetime import time, timedelta
from typing import Any

import aiohttp
import openpyxl
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.demo import seed_council
from flows import exports
from flows.broadcasts import service as broadcasts
from flows.councils import create as create_council
from flows.engine import Export, Flow, Reply
from flows.registry import FLOWS
from flows.spreadsheet import XLSX_TYPE
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Council,
    DashboardSession,
    LoginLink,
    MeetingInvite,
    OutboxMessage,
    OutboxStatus,
    Role,
    Rsvp,
    utcnow,
)
from storage.queries import people
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator, FakeUser
from tests.helpers import EN, onboard
from tests.test_talents import coordinator_of, seed_directory

LINK = re.compile(r"https?://\S+/dashboard/login/\S+")


async def link_for(user: FakeUser) -> str:
    seen = len(user.inbox)
    user.send("/dashboard")
    message = await user.wait_for(
        lambda m: LINK.search(m.text or "") is not None and user.inbox.index(m) >= seen
    )
    found = LINK.search(message.text or "")
    assert found is not None
    return found[0]


class Tab:
    """A browser tab without a browser: follows the forms a person would submit."""

    def __init__(self, language: str = "en") -> None:
        self.client = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": language}
        )

    async def get(self, url: str) -> tuple[int, str]:
        async with self.client.get(url, allow_redirects=True) as response:
            return response.status, await response.text()

    async def post(self, url: str, data: dict[str, str], origin: str | None = None) -> int:
        headers = {"Origin": origin} if origin else {}
        async with self.client.post(url, data=data, headers=headers) as response:
            return response.status

    async def sign_in(self, link: str) -> tuple[int, str]:
        status, body = await self.get(link)
        assert status == 200, body
        csrf = hidden(body, "csrf")
        async with self.client.post(link, data={"csrf": csrf}) as response:
            return response.status, await response.text()

    async def close(self) -> None:
        await self.client.close()


def hidden(body: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', body)
    assert found is not None, body
    return found[1]


async def test_a_coordinator_signs_in_with_a_one_time_link(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    nadia = await coordinator_of(bot, emulator, council, 52_001)
    link = await link_for(nadia)
    assert link.startswith(f"http://127.0.0.1:{bot.port}/dashboard/login/")
    tab = Tab()
    try:
        status, home = await tab.sign_in(link)
        assert status == 200  # one council: its overview, straight away
        assert "Conseil citoyen Quartier Nord" in home
        assert "/dashboard/quartier-nord/export/talents.csv" in home
        assert "/dashboard/quartier-nord/export/talents.xlsx" in home  # beside it, a workbook
        base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord"
        for section in ("/", "/directory", "/calls", "/meetings", "/consultations", "/broadcasts"):
            status, body = await tab.get(base + section)
            assert status == 200, section
        status, directory = await tab.get(base + "/directory?when=evenings")
        assert status == 200 and EN._("Evenings") in directory
        async with tab.client.get(base + "/export/talents.csv") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            assert (await response.read()).startswith("\ufeff".encode())
        async with tab.client.get(base + "/export/talents.xlsx") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == XLSX_TYPE
            assert response.headers["Content-Disposition"] == (
                'attachment; filename="quartier-nord-talents.xlsx"'
            )
            assert (await response.read()).startswith(b"PK")  # a workbook is a zip file
        # The link worked once: a second browser cannot use it.
        other = Tab()
        try:
            status, body = await other.get(link)
            assert status == 410 and EN._("This link has expired") in body
        finally:
            await other.close()
        # Signing out ends the session on the server, and leads to the sign-in advice.
        _, page = await tab.get(base + "/")
        logout = f"http://127.0.0.1:{bot.port}/dashboard/logout"
        assert await tab.post(logout, {"csrf": hidden(page, "csrf")}) == 200
        assert (await tab.get(base + "/"))[0] == 401
        status, _ = await tab.get(base + "/")
        assert status == 401
    finally:
        await tab.close()


async def test_links_and_sessions_expire(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    nadia = await coordinator_of(bot, emulator, council, 52_002)
    link = await link_for(nadia)

    async def age_links(session: AsyncSession) -> None:
        await session.execute(update(LoginLink).values(expires_at=utcnow() - timedelta(seconds=1)))

    await in_transaction(bot, age_links)
    tab = Tab()
    try:
        status, body = await tab.get(link)
        assert status == 410
        # Nor can the form be posted to once the link has expired.
        assert await tab.post(link, {"csrf": "x"}) == 403
        status, _ = await tab.sign_in(await link_for(nadia))
        assert status == 200

        async def age_sessions(session: AsyncSession) -> None:
            await session.execute(
                update(DashboardSession).values(expires_at=utcnow() - timedelta(seconds=1))
            )

        await in_transaction(bot, age_sessions)
        status, body = await tab.get(f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord/")
        assert status == 401 and "/dashboard" in body
    finally:
        await tab.close()


async def test_another_councils_pages_and_foreign_forms_are_refused(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    async def other_council(session: AsyncSession) -> None:
        await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")

    await in_transaction(bot, other_council)
    organiser = await coordinator_of(bot, emulator, council, 52_003, role=Role.ORGANISER)
    tab = Tab()
    try:
        await tab.sign_in(await link_for(organiser))
        base = f"http://127.0.0.1:{bot.port}/dashboard"
        for path in (
            "/quartier-sud/",
            "/quartier-sud/meetings",
            "/quartier-sud/export/meetings.csv",
            "/quartier-sud/export/meetings.xlsx",
            "/nowhere/",
        ):
            assert (await tab.get(base + path))[0] == 403, path
        # An organiser sees meetings and consultations, not the directory or its export.
        assert (await tab.get(base + "/quartier-nord/meetings"))[0] == 200
        for path in (
            "/quartier-nord/directory",
            "/quartier-nord/export/talents.csv",
            "/quartier-nord/export/talents.xlsx",
        ):
            assert (await tab.get(base + path))[0] == 403, path
        async with tab.client.get(base + "/quartier-nord/export/meetings.xlsx") as response:
            assert response.status == 200
        # A form without the session's token, or from another site, changes nothing.
        _, page = await tab.get(base + "/quartier-nord/")
        csrf = hidden(page, "csrf")
        assert await tab.post(base + "/logout", {"csrf": "forged"}) == 403
        assert (
            await tab.post(base + "/logout", {"csrf": csrf}, origin="https://evil.example") == 403
        )
        assert (await tab.get(base + "/quartier-nord/"))[0] == 200
    finally:
        await tab.close()


async def test_residents_get_no_link(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    amina = emulator.resident(52_004, language_code="en")
    await onboard(amina, EN)
    amina.send("/dashboard")
    answer = await amina.next_message()
    assert "/dashboard/login/" not in (answer.text or "")
    tab = Tab()
    try:
        status, body = await tab.get(f"http://127.0.0.1:{bot.port}/dashboard/")
        assert status == 200 and "/dashboard" in body
        status, body = await tab.get(f"http://127.0.0.1:{bot.port}/dashboard/login/not-a-token")
        assert status == 410
    finally:
        await tab.close()


async def test_the_meetings_page_lists_answers_with_guests_and_needs(
    bot: CoupDePouce, emulator: BotApiEmulator
) -> None:
    async def seed(session: AsyncSession) -> None:
        demo = await seed_council(session, utcnow())
        await people.grant_role(session, demo, "telegram", "52005", Role.COORDINATOR)
        invite = await session.scalar(select(MeetingInvite).limit(1))
        assert invite is not None
        invite.rsvp, invite.guests, invite.needs = Rsvp.COMING, 1, ["access", "childcare"]
        invite.answered_at = utcnow()

    await in_transaction(bot, seed)
    nadia = emulator.resident(52_005, first_name="Nadia", language_code="en")
    await onboard(nadia, EN, slug="demo")
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        status, page = await tab.get(f"http://127.0.0.1:{bot.port}/dashboard/demo/meetings")
        assert status == 200
        assert "(+1)" in page
        assert EN._("Accessibility (wheelchair, step-free access)") in page
        assert EN._("Childcare") in page
    finally:
        await tab.close()


async def test_a_coordinator_stops_a_broadcast_from_the_dashboard(
    bot: CoupDePouce, emulator: BotApiEmulator
) -> None:
    async def seed(session: AsyncSession) -> int:
        demo = await seed_council(session, utcnow())
        await people.grant_role(session, demo, "telegram", "52006", Role.COORDINATOR)
        demo.quiet_start, demo.quiet_end = time(0, 0), time(23, 59)  # it waits for the morning
        broadcast = await broadcasts.start_broadcast(
            session,
            council=demo,
            kind="announcement",
            audience=broadcasts.members(demo),
            render=lambda t: Reply("Fête de quartier samedi !"),
        )
        return broadcast.id

    broadcast_id = await in_transaction(bot, seed)
    nadia = emulator.resident(52_006, first_name="Nadia", language_code="en")
    await onboard(nadia, EN, slug="demo")
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        page_url = f"http://127.0.0.1:{bot.port}/dashboard/demo/broadcasts"
        status, page = await tab.get(page_url)
        assert status == 200 and "Fête de quartier samedi !" in page
        stop = f"http://127.0.0.1:{bot.port}/dashboard/demo/broadcasts/{broadcast_id}/stop"
        assert await tab.post(stop, {"csrf": "forged"}) == 403
        assert await tab.post(stop, {"csrf": hidden(page, "csrf")}) == 200
        _, page = await tab.get(page_url)
        assert f"/broadcasts/{broadcast_id}/stop" not in page  # nothing left to stop
    finally:
        await tab.close()

    async def state(session: AsyncSession) -> tuple[BroadcastStatus, int]:
        stopped = await session.get_one(Broadcast, broadcast_id)
        waiting = await session.scalar(
            select(func.count()).where(
                OutboxMessage.broadcast_id == broadcast_id,
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )
        return stopped.status, int(waiting or 0)

    assert await in_transaction(bot, state) == (BroadcastStatus.INTERRUPTED, 0)


async def rooms(_session: AsyncSession, council: Council) -> list[dict[str, Any]]:
    return [{"room": "Salle des fêtes", "council": council.slug}]


ROOMS = Flow(
    name="rooms",
    exports=[Export("rooms", "Rooms", frozenset({Role.COORDINATOR}), rooms)],
)


async def test_an_export_a_capability_declares_is_offered_without_touching_the_dashboard(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    bot = await start_bot(flows=[*FLOWS, ROOMS])
    nadia = await coordinator_of(bot, emulator, council, 52_009)
    tab = Tab()
    try:
        status, _home = await tab.sign_in(await link_for(nadia))
        base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord"
        status, overview = await tab.get(base + "/")
        assert status == 200 and "export/rooms.csv" in overview and "Rooms" in overview
        async with tab.client.get(base + "/export/rooms.csv") as response:
            assert response.status == 200
            # No columns declared: its own keys for headers, in the council's conventions.
            assert (await response.text()).splitlines() == [
                "\ufeffroom;council",
                "Salle des fêtes;quartier-nord",
            ]
        async with tab.client.get(base + "/export/rooms.xlsx") as response:
            assert response.status == 200
            sheet = openpyxl.load_workbook(io.BytesIO(await response.read())).active
            assert sheet is not None
            assert [[cell.value for cell in row] for row in sheet.iter_rows()] == [
                ["room", "council"],
                ["Salle des fêtes", "quartier-nord"],
            ]
    finally:
        await tab.close()
    with pytest.raises(ValueError, match="declared twice"):
        exports.available([*FLOWS, ROOMS, ROOMS])
