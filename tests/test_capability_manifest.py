"""A capability declares what it adds to the rest, and the rest finds it there: a tool
library registered here only, with what it keeps about people, an export, its part of the
digest and its page on the dashboard, shows in /mydata, in the exports, in the council's
digest and in the dashboard's navigation, with no line of privacy, exports, digest or
dashboard changed for it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flows import exports
from flows.digest import service as digest
from flows.engine import Export, Flow, PersonalData
from flows.i18n import Translator
from flows.registry import FLOWS
from flows.sections import (
    Card,
    DashboardSection,
    DigestSection,
    Figure,
    Page,
    Period,
    Visit,
    dashboard_sections,
    digest_sections,
)
from flows.staff import COORDINATING
from storage.models import Council, Person, Role
from tests.conftest import StartBot
from tests.emulator import BotApiEmulator
from tests.helpers import EN, onboard
from tests.test_dashboard import Tab, link_for
from tests.test_digest import register, schedule_of, set_council, text_of
from tests.test_talents import coordinator_of

# What the tool library knows, in memory: the tools each council lent, and to whom.
LENT = {"quartier-nord": [("Perceuse", "Amina"), ("Escabeau", "Bilal")]}


def lent_in(council: Council) -> list[tuple[str, str]]:
    return LENT.get(council.slug, [])


async def borrowed_by(_session: AsyncSession, person: Person) -> list[str]:
    return [tool for lent in LENT.values() for tool, name in lent if name == person.first_name]


def borrowed_line(t: Translator, tools: list[str]) -> str | None:
    return f"Tools you borrowed: {', '.join(tools)}" if tools else None


async def tools_records(_session: AsyncSession, council: Council) -> list[dict[str, Any]]:
    return [{"tool": tool, "council": council.slug} for tool, _name in lent_in(council)]


@dataclass(frozen=True)
class ToolNews:
    lent: int

    @property
    def newsworthy(self) -> bool:
        return self.lent > 0


async def tools_news(_session: AsyncSession, council: Council, _period: Period) -> ToolNews:
    return ToolNews(len(lent_in(council)))


def tools_lines(_t: Translator, news: ToolNews, _timezone: str) -> list[str]:
    return [f"🧰 {news.lent} tools lent"] if news.lent else []


async def tools_page(v: Visit) -> Page:
    return Page(
        cards=[Card(tool, [f"Lent to {name}"]) for tool, name in lent_in(v.council)],
        empty="Nothing lent yet.",
    )


async def tools_figures(_session: AsyncSession, council: Council) -> list[Figure]:
    return [Figure("Tools lent", len(lent_in(council)))]


TOOLS = Flow(
    name="tools",
    personal_data=[PersonalData("tool_loans", (), borrowed_by, borrowed_line)],
    exports=[Export("tools", "Tool library", COORDINATING, tools_records)],
    digest=[DigestSection("tools", 25, tools_news, tools_lines)],
    dashboard=[
        DashboardSection(
            "tools", "Tool library", COORDINATING, 70, tools_page, figures=tools_figures
        )
    ],
)


async def test_a_capability_declared_in_its_manifest_shows_everywhere(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    bot = await start_bot(flows=[*FLOWS, TOOLS])

    # /mydata, through the real engine: what the tool library keeps about Amina.
    amina = emulator.resident(66_001, first_name="Amina", language_code="en")
    await onboard(amina, EN)
    amina.send("/mydata")
    sent = await amina.wait_for(lambda m: m.document is not None)
    assert sent.document is not None
    assert json.loads(sent.document[1])["tool_loans"] == ["Perceuse"]
    assert "• Tools you borrowed: Perceuse" in (sent.plain_text or "").splitlines()

    # The exports: offered by `coupdepouce export` and the dashboard, after the shipped ones.
    assert list(exports.available([*FLOWS, TOOLS]))[-1] == "tools"
    assert "tools" not in exports.available(FLOWS)

    # The digest: the group reads the tool library's line, and nothing else was new.
    await set_council(bot, council.id, locale="en")
    group = await register(bot, emulator, council)
    due, _ = await schedule_of(bot, council.id)
    assert due is not None
    [digests] = [job for job in bot.scheduler.jobs if job.name == digest.DIGESTS_JOB]
    assert await bot.scheduler.tick(digests, due) == 1
    message = await emulator.wait_until(lambda: group.inbox[1] if len(group.inbox) > 1 else None)
    assert (
        text_of(message) == "📰 News of the week — Conseil citoyen Quartier Nord\n\n🧰 2 tools lent"
    )

    # The dashboard: its page in the navigation, its count on the overview, its export.
    nadia = await coordinator_of(bot, emulator, council, 66_002)
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord"
        status, overview = await tab.get(base + "/")
        assert status == 200
        nav = re.findall(r'<li><a href="/dashboard/quartier-nord/(\w*)"[^>]*>([^<]+)</a>', overview)
        assert nav[-2:] == [("members", EN._("Members to verify")), ("tools", "Tool library")]
        assert re.search(r"<strong>2</strong>Tools lent", overview)
        assert 'href="/dashboard/quartier-nord/export/tools.csv"' in overview
        status, page = await tab.get(base + "/tools")
        assert status == 200
        assert "<h1>Tool library</h1>" in page and "<h2>Perceuse</h2>" in page
        assert "<p>Lent to Bilal</p>" in page
        assert 'aria-current="page">Tool library' in page
    finally:
        await tab.close()

    # Only for those it names: an organiser neither sees it nor opens it.
    organiser = await coordinator_of(bot, emulator, council, 66_003, role=Role.ORGANISER)
    tab = Tab()
    try:
        await tab.sign_in(await link_for(organiser))
        _, overview = await tab.get(base + "/")
        assert "/dashboard/quartier-nord/tools" not in overview
        assert (await tab.get(base + "/tools"))[0] == 403
    finally:
        await tab.close()


async def test_without_the_capability_nothing_of_it_shows(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    bot = await start_bot()
    await set_council(bot, council.id, locale="en")
    group = await register(bot, emulator, council)
    due, _ = await schedule_of(bot, council.id)
    assert due is not None
    [digests] = [job for job in bot.scheduler.jobs if job.name == digest.DIGESTS_JOB]
    assert await bot.scheduler.tick(digests, due) == 0  # nothing new: nothing posted
    assert len(group.inbox) == 1  # the confirmation of /register
    nadia = await coordinator_of(bot, emulator, council, 66_004)
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord"
        _, overview = await tab.get(base + "/")
        assert "/tools" not in overview and "Tools lent" not in overview
        assert (await tab.get(base + "/tools"))[0] == 404
    finally:
        await tab.close()


def test_the_shipped_sections_come_in_their_order() -> None:
    assert [s.name for s in digest_sections(FLOWS)] == [
        "talents",
        "calls",
        "meetings",
        "consultations",
    ]
    assert [s.name for s in dashboard_sections([TOOLS, *FLOWS])] == [
        "directory",
        "calls",
        "meetings",
        "consultations",
        "broadcasts",
        "members",
        "tools",
    ]


def test_a_section_declared_twice_stops_the_bot() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        dashboard_sections([*FLOWS, TOOLS, TOOLS])
    with pytest.raises(ValueError, match="declared twice"):
        digest.job([*FLOWS, TOOLS, TOOLS])
