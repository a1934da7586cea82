"""Members silent for the period their council chose are warned a month before, in their
language, with one tap to stay; those who say nothing are then erased, as /forget would."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.privacy import inactive
from flows.registry import FLOWS
from storage.models import Council, Identity, Membership, Person, utcnow
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator
from tests.factories import add_residents

ANNA, BOB, CHLOE = 71_001, 71_002, 71_003
SILENT = inactive.job(FLOWS)


async def test_silent_members_are_warned_then_erased_unless_they_tap_to_stay(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    now = utcnow()

    async def seed(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        stored.inactive_months = 12
        people = await add_residents(session, stored, [ANNA, BOB, CHLOE], ["en", "en", "fr"])
        await session.flush()
        # Anna and Chloé last wrote eleven and a half months ago; Bob last week.
        for person, days in zip(people, (350, 7, 350), strict=True):
            person.created_at = now - timedelta(days=400)
            person.last_seen_at = now - timedelta(days=days)
        await session.execute(
            update(Membership)
            .where(Membership.council_id == council.id)
            .values(joined_at=now - timedelta(days=400))
        )

    await in_transaction(bot, seed)
    anna, bob, chloe = (emulator.resident(chat) for chat in (ANNA, BOB, CHLOE))

    assert await bot.scheduler.tick(SILENT, now) == 2
    assert await bot.scheduler.tick(SILENT, now) == 0  # warned once, not at every tick
    bot.dispatcher.wake()
    warning = await anna.wait_for(lambda m: "Unless you tell us you want to stay" in (m.text or ""))
    assert "✅ I want to stay" in warning.labels()
    assert "Conseil citoyen Quartier Nord" in (warning.text or "")
    warned_fr = await chloe.wait_for(lambda m: "✅ Je veux rester" in m.labels())
    assert "Conseil citoyen Quartier Nord" in (warned_fr.text or "")
    assert not bob.inbox

    # A copied button does not keep someone else.
    bob.tap_data(warning.button("✅ I want to stay").callback_data or "", warning)
    await emulator.wait_until(lambda: bob.answered_callbacks or None, timeout=5)
    assert bob.answered_callbacks[-1].params.get("text") == "Sorry, this button does not work."
    anna.tap("✅ I want to stay", warning)
    await anna.wait_for(lambda m: (m.text or "").startswith("Thank you: you stay a member of"))

    # A month later: Chloé, who said nothing, is erased; Anna and Bob stay.
    assert await bot.scheduler.tick(SILENT, now + timedelta(days=31)) == 1

    async def who_is_left(session: AsyncSession) -> list[str]:
        rows = await session.scalars(select(Identity.external_id).join(Person))
        return sorted(rows)

    left = await in_transaction(bot, who_is_left)
    assert str(CHLOE) not in left
    assert {str(ANNA), str(BOB)} <= set(left)

    # A council that keeps members for ever warns nobody.
    async def for_ever(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        stored.inactive_months = 0

    await in_transaction(bot, for_ever)
    assert await bot.scheduler.tick(SILENT, now + timedelta(days=3650)) == 0
