"""Calls for talents: sent to matching residents only, answered with one tap (and a short
message), followed by the coordinator as answers come, summed up at the deadline."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.calls.jobs import CLOSE_CALLS
from flows.subscription import service as subscription
from storage.models import Call, CallAnswer, Council, Identity, TalentProfile, utcnow
from storage.queries import people
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator, FakeUser, SentMessage
from tests.factories import add_residents
from tests.helpers import FR, run_cli
from tests.test_talents import coordinator_of, seed_directory

COOK_EVENINGS, COOK_DAYTIME, GARDENER, OTHER_COUNCIL = 41_001, 41_002, 41_003, 41_100


async def start_cooking_call(nadia: FakeUser) -> SentMessage:
    """A coordinator writes a call for cooks free in the evening, up to how many are needed
    (that question is returned)."""
    nadia.send("/call")
    await nadia.next_message()
    nadia.send("Repas solidaire")
    await nadia.next_message()
    nadia.send("Cuisiner pour 80 personnes samedi soir, salle Jean-Moulin.")
    skills = await nadia.next_message()
    nadia.tap("Home and repairs", skills)
    nadia.tap("Cooking", await nadia.wait_for(lambda m: "Cooking" in m.labels()))
    nadia.tap("◀ Back", await nadia.wait_for(lambda m: "✅ Cooking" in m.labels()))
    nadia.tap("✅ Done", await nadia.wait_for(lambda m: "Home and repairs (1)" in m.labels()))
    when = await nadia.wait_for(lambda m: "Evenings" in m.labels())
    nadia.tap("Evenings", when)
    nadia.tap("✅ Done", await nadia.wait_for(lambda m: "✅ Evenings" in m.labels()))
    return await nadia.wait_for(lambda m: "3" in m.labels())


async def send_cooking_call(nadia: FakeUser) -> None:
    """A coordinator asks for 3 cooks free in the evening, answering within a week."""
    nadia.tap("3", await start_cooking_call(nadia))
    nadia.tap("In a week", await nadia.wait_for(lambda m: "In a week" in m.labels()))


async def answers(app: CoupDePouce) -> list[tuple[str, str | None]]:
    async def run(session: AsyncSession) -> list[tuple[str, str | None]]:
        rows = await session.execute(select(CallAnswer.answer, CallAnswer.message))
        return [(str(answer), message) for answer, message in rows]

    result: list[tuple[str, str | None]] = await in_transaction(app, run)
    return result


async def test_a_call_reaches_matching_residents_who_answer(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    residents = {
        chat: emulator.resident(chat, language_code="en")
        for chat in (41_001, 41_002, 41_003, 41_100)
    }
    nadia = await coordinator_of(bot, emulator, council, 43_001)
    await send_cooking_call(nadia)
    preview = await nadia.wait_for(lambda m: (m.text or "").startswith("Preview"))
    assert (preview.text or "").startswith("Preview: this call will go to 1 resident.")
    assert "Repas solidaire" in (preview.text or "")
    nadia.tap("Send", preview)

    call = await residents[COOK_EVENINGS].wait_for(lambda m: "Repas solidaire" in (m.text or ""))
    assert call.labels() == ["🙋 I can help", "Maybe, tell me more", "Not this time"]
    for chat in (COOK_DAYTIME, GARDENER, OTHER_COUNCIL):
        assert all("Repas solidaire" not in (m.text or "") for m in residents[chat].inbox)

    cook = residents[COOK_EVENINGS]
    cook.tap("🙋 I can help", call)
    await cook.wait_for(lambda m: (m.text or "").startswith("Thank you! Add a short message"))
    await nadia.wait_for(
        lambda m: m.text == "Habitant 41001 answered “I can help” to “Repas solidaire”."
    )
    cook.send("J'apporte une grande marmite")
    await cook.wait_for(lambda m: m.text == "Sent to the coordinator.")
    await nadia.wait_for(
        lambda m: m.text == "Habitant 41001 about “Repas solidaire”: J'apporte une grande marmite"
    )
    assert await answers(bot) == [("yes", "J'apporte une grande marmite")]

    cook.tap("Not this time", call)  # changing one's mind
    await cook.wait_for(lambda m: (m.text or "").startswith("Thank you for answering"))
    assert await answers(bot) == [("no", "J'apporte une grande marmite")]


async def test_forged_answers_change_nothing(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    for chat in (41_001, 41_002, 41_003, 41_100):
        emulator.resident(chat, language_code="en")
    nadia = await coordinator_of(bot, emulator, council, 43_002)
    await send_cooking_call(nadia)
    nadia.tap("Send", await nadia.wait_for(lambda m: (m.text or "").startswith("Preview")))
    await nadia.wait_for(lambda m: (m.text or "").startswith("On its way"))
    call_id = await in_transaction(bot, lambda s: s.scalar(select(Call.id)))
    outsider = emulator.resident(OTHER_COUNCIL)  # a resident of another council
    outsider.tap_data(f"call:{call_id}:yes", nadia.inbox[0])
    outsider.tap_data(f"call:{call_id + 1}:yes", nadia.inbox[0])
    outsider.tap_data(f"call:{call_id}:always", nadia.inbox[0])
    await emulator.wait_until_consumed()
    await emulator.wait_until(lambda: len(outsider.answered_callbacks) == 3 or None, timeout=5)
    toasts = {c.params.get("text") for c in outsider.answered_callbacks}
    assert toasts == {FR._("Sorry, this button does not work.")}  # their stored language
    assert await answers(bot) == []


async def test_a_member_the_call_was_not_sent_to_cannot_answer_with_a_copied_button(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    cook = emulator.resident(COOK_EVENINGS, language_code="en")
    gardener = emulator.resident(GARDENER, language_code="en")  # a member, but no cook
    nadia = await coordinator_of(bot, emulator, council, 43_004)
    await send_cooking_call(nadia)
    nadia.tap("Send", await nadia.wait_for(lambda m: (m.text or "").startswith("Preview")))
    call = await cook.wait_for(lambda m: "Repas solidaire" in (m.text or ""))
    told = len(nadia.inbox)

    gardener.tap_data(call.buttons[0][0].callback_data or "", call)  # the cook's "I can help"
    await emulator.wait_until(lambda: len(gardener.answered_callbacks) == 1 or None, timeout=5)
    assert gardener.answered_callbacks[0].params.get("text") == "Sorry, this button does not work."
    await emulator.wait_until_consumed()
    assert await answers(bot) == []
    assert not [m for m in nadia.inbox[told:] if "41003" in (m.text or "")]  # nobody told

    cook.tap("🙋 I can help", call)  # the one it was sent to still answers
    await nadia.wait_for(
        lambda m: m.text == "Habitant 41001 answered “I can help” to “Repas solidaire”."
    )
    assert await answers(bot) == [("yes", None)]
    assert not [m for m in nadia.inbox if "41003" in (m.text or "")]


async def test_at_the_deadline_the_coordinator_gets_the_summary(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, database_url: str
) -> None:
    await seed_directory(bot, council)
    cook = emulator.resident(COOK_EVENINGS, language_code="en")
    nadia = await coordinator_of(bot, emulator, council, 43_003)
    await send_cooking_call(nadia)
    nadia.tap("Send", await nadia.wait_for(lambda m: (m.text or "").startswith("Preview")))
    call = await cook.wait_for(lambda m: "Repas solidaire" in (m.text or ""))
    cook.tap("Maybe, tell me more", call)
    await cook.wait_for(lambda m: (m.text or "").startswith("Thank you! Add"))

    async def past_deadline(session: AsyncSession) -> None:
        await session.execute(update(Call).values(deadline=utcnow() - timedelta(minutes=1)))

    await in_transaction(bot, past_deadline)
    assert await bot.scheduler.tick(CLOSE_CALLS) == 1
    assert await bot.scheduler.tick(CLOSE_CALLS) == 0  # never twice
    summary = await nadia.wait_for(
        lambda m: (m.text or "").startswith("“Repas solidaire” is closed.")
    )
    assert (summary.text or "").splitlines()[1:] == [
        "0 can help",
        "1 maybe: Habitant 41001",
        "0 not this time",
    ]
    cook.tap("🙋 I can help", call)
    await cook.wait_for(lambda m: m.text == "This call is closed. Thank you all the same!")
    count = await in_transaction(
        bot, lambda s: s.scalar(select(func.count()).select_from(CallAnswer))
    )
    assert count == 1
    code, out, err = await run_cli(
        "export",
        "calls",
        "--council",
        "quartier-nord",
        "--format",
        "json",
        env={"DATABASE_URL": database_url},
    )
    assert code == 0, err
    [exported] = json.loads(out)
    assert (exported["title"], exported["status"], exported["maybe"]) == (
        "Repas solidaire",
        "closed",
        "Habitant 41001",
    )


async def test_a_call_nobody_matches_is_not_sent(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    nadia = await coordinator_of(bot, emulator, council, 43_004)  # an empty directory
    await send_cooking_call(nadia)
    nobody = await nadia.wait_for(lambda m: (m.text or "").startswith("Nobody matches"))
    assert "Send" not in nobody.labels()
    assert await in_transaction(bot, lambda s: s.scalar(select(Call.id))) is None


async def helper_answered(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, coordinator_id: int
) -> tuple[FakeUser, FakeUser]:
    """A call sent, and the evening cook's "I can help"; returns (coordinator, cook)."""
    await seed_directory(bot, council)
    cook = emulator.resident(COOK_EVENINGS, first_name="Habitant 41001", language_code="en")
    nadia = await coordinator_of(bot, emulator, council, coordinator_id)
    await send_cooking_call(nadia)
    nadia.tap("Send", await nadia.wait_for(lambda m: (m.text or "").startswith("Preview")))
    call = await cook.wait_for(lambda m: "Repas solidaire" in (m.text or ""))
    cook.tap("🙋 I can help", call)
    cook.tap("No, thanks", await cook.wait_for(lambda m: "No, thanks" in m.labels()))
    await cook.wait_for(lambda m: (m.text or "").startswith("Alright"))
    return nadia, cook


async def introduce(nadia: FakeUser) -> None:
    nadia.send("/calls")
    nadia.tap("Repas solidaire", await nadia.wait_for(lambda m: "Repas solidaire" in m.labels()))
    answers = await nadia.wait_for(lambda m: "Introduce Habitant 41001" in m.labels())
    assert "🙋 Habitant 41001" in (answers.text or "")
    nadia.tap("Introduce Habitant 41001", answers)


async def test_an_introduction_happens_only_on_yes_then_through_the_bot(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    nadia, cook = await helper_answered(bot, emulator, council, 44_001)
    await introduce(nadia)
    question = await cook.wait_for(lambda m: "may we share your contact" in (m.text or ""))
    assert question.text == (
        "About “Repas solidaire”: may we share your contact with Nadia, who runs it?"
    )
    assert not any("agreed" in (m.text or "") for m in nadia.inbox)  # nothing before yes
    cook.tap("Yes, share it", question)
    await cook.wait_for(lambda m: (m.text or "").startswith("Thank you! Their messages"))
    agreed = await nadia.wait_for(lambda m: "agreed to be put in touch" in (m.text or ""))
    assert "@" not in (agreed.text or "")  # the cook did not allow direct contact
    nadia.tap("✉️ Write to them", agreed)
    nadia.send("Bonjour, pouvez-vous venir à 17 h ?")
    await nadia.wait_for(lambda m: m.text == "Passed on.")
    relayed = await cook.wait_for(lambda m: "pouvez-vous venir" in (m.text or ""))
    assert (relayed.text or "").startswith("✉️ Nadia about “Repas solidaire”:")
    cook.tap("Answer", relayed)
    cook.send("Oui, avec plaisir")
    await nadia.wait_for(lambda m: "Oui, avec plaisir" in (m.text or ""))

    # Another member with a copy of the "Answer" button cannot write into their exchange.
    async def another_member(session: AsyncSession) -> None:
        await add_residents(session, await session.get_one(Council, council.id), [44_998], ["en"])

    await in_transaction(bot, another_member)
    stranger = emulator.resident(44_998, language_code="en")
    answered = len(stranger.answered_callbacks)
    stranger.tap_data(relayed.button("Answer").callback_data or "", relayed)
    await emulator.wait_until(lambda: len(stranger.answered_callbacks) > answered or None, 5)
    assert stranger.answered_callbacks[-1].params.get("text") == "Sorry, this button does not work."
    assert not stranger.inbox


async def test_a_no_is_respected_silently(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    nadia, cook = await helper_answered(bot, emulator, council, 44_002)
    await introduce(nadia)
    question = await cook.wait_for(lambda m: "may we share your contact" in (m.text or ""))
    before = len(nadia.inbox)
    cook.tap("No", question)
    await cook.wait_for(lambda m: m.text == "Understood: nothing will be shared.")
    stranger = emulator.resident(44_999, language_code="en")
    answered = len(stranger.answered_callbacks)
    stranger.tap_data(question.buttons[0][0].callback_data or "", question)  # someone else's yes
    await emulator.wait_until(lambda: len(stranger.answered_callbacks) > answered or None, 5)
    assert len(nadia.inbox) == before, [m.text for m in nadia.inbox[-3:]]  # she hears nothing


async def test_direct_contact_when_the_resident_allowed_it(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    nadia, cook = await helper_answered(bot, emulator, council, 44_003)

    async def allow_direct_contact(session: AsyncSession) -> None:
        await session.execute(update(TalentProfile).values(contact_ok=True))
        await session.execute(
            update(Identity).where(Identity.external_id == "41001").values(username="cuisto41")
        )

    await in_transaction(bot, allow_direct_contact)
    await introduce(nadia)
    cook.tap("Yes, share it", await cook.wait_for(lambda m: "may we share" in (m.text or "")))
    await cook.wait_for(lambda m: m.text == "Thank you! They will contact you directly.")
    agreed = await nadia.wait_for(lambda m: "agreed to be put in touch" in (m.text or ""))
    assert (agreed.text or "").endswith("@cuisto41")


async def test_residents_who_stopped_or_left_get_no_call(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)

    async def cook_stops(session: AsyncSession) -> None:
        person = await people.person_by_identity(session, "telegram", str(COOK_EVENINGS))
        assert person is not None
        await subscription.stop(session, person)

    await in_transaction(bot, cook_stops)
    nadia = await coordinator_of(bot, emulator, council, 43_010)
    await send_cooking_call(nadia)
    await nadia.wait_for(lambda m: (m.text or "").startswith("Nobody matches"))
