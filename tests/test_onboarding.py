"""A resident joins through a deep link, in their language, and gives or refuses consent."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.onboarding.service import PRIVACY_VERSION
from storage.models import Conversation, Council, Identity, Membership, Person
from storage.queries import councils
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator
from tests.helpers import AR, EN, FR, count_rows, person_of


async def test_deep_link_onboarding_in_french(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    amina = emulator.resident(1001, first_name="Amina", language_code="fr")
    amina.send("/start quartier-nord")
    consent = await amina.next_message()
    assert "Bonjour Amina" in (consent.text or "")
    assert "Conseil citoyen Quartier Nord" in (consent.text or "")
    assert consent.button(FR._("✅ Yes, I agree"))

    amina.tap(FR._("✅ Yes, I agree"))
    welcome = await amina.next_message()
    assert welcome.text == FR._("Thank you! You are now a member of {council}.").format(
        council="Conseil citoyen Quartier Nord"
    )
    menu = await amina.next_message()
    assert "/mydata" in (menu.text or "") and "/forget" in (menu.text or "")

    person = await person_of(bot, 1001)
    assert person is not None
    assert (person.first_name, person.locale, person.consent_version) == (
        "Amina",
        "fr",
        PRIVACY_VERSION,
    )
    assert person.consented_at is not None
    assert await count_rows(bot, Membership) == 1
    # The consent screen's buttons were taken off once answered.
    assert emulator.messages(1001)[0].buttons == []


async def test_greets_in_english_and_arabic_and_falls_back_to_french(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    cases = [(2001, "en-GB", EN), (2002, "ar", AR), (2003, "it", FR), (2004, None, FR)]
    for user_id, language_code, t in cases:
        resident = emulator.resident(user_id, first_name="Sam", language_code=language_code)
        resident.send("/start quartier-nord")
        consent = await resident.next_message()
        assert t._("Do you agree?") in (consent.text or ""), (language_code, consent.text)
        assert consent.button(t._("✅ Yes, I agree"))
    assert "هل" in (emulator.messages(2002)[0].text or "")  # Arabic, really


async def test_nothing_is_stored_before_consent_and_a_refusal_keeps_nothing(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    karim = emulator.resident(1002, first_name="Karim", language_code="fr")
    karim.send("/start quartier-nord")
    await karim.next_message()
    assert await count_rows(bot, Person) == 0
    assert await count_rows(bot, Identity) == 0

    karim.tap(FR._("No, thanks"))
    refusal = await karim.next_message()
    assert "/start" in (refusal.text or "")
    assert await count_rows(bot, Person) == 0
    assert await count_rows(bot, Conversation) == 0

    karim.send("/start")  # one council: no need to choose it
    consent = await karim.next_message()
    assert consent.button(FR._("✅ Yes, I agree"))


async def test_plain_start_offers_the_councils(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    async def add_second(session: AsyncSession) -> None:
        await councils.add(
            session, "centre-ville", "Conseil citoyen Centre-Ville", "Europe/Paris", "fr"
        )

    await in_transaction(bot, add_second)
    lea = emulator.resident(1003, first_name="Léa", language_code="fr")
    lea.send("/start")
    choice = await lea.next_message()
    assert choice.labels() == ["Conseil citoyen Centre-Ville", "Conseil citoyen Quartier Nord"]
    lea.tap("Conseil citoyen Centre-Ville")
    consent = await lea.next_message()
    assert "Centre-Ville" in (consent.text or "")
    lea.tap(FR._("✅ Yes, I agree"))
    await lea.next_message()

    async def council_of_lea(session: AsyncSession) -> str | None:
        return await session.scalar(
            select(Council.slug)
            .join(Membership)
            .join(Person)
            .join(Identity)
            .where(Identity.external_id == "1003")
        )

    assert await in_transaction(bot, council_of_lea) == "centre-ville"


async def test_unknown_council_in_the_link_is_explained(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    async def add_second(session: AsyncSession) -> None:
        await councils.add(
            session, "centre-ville", "Conseil citoyen Centre-Ville", "Europe/Paris", "fr"
        )

    await in_transaction(bot, add_second)
    omar = emulator.resident(1004, first_name="Omar", language_code="en")
    omar.send("/start quartier-sud")
    explanation = await omar.next_message()
    assert "quartier-sud" in (explanation.text or "")
    choice = await omar.next_message()
    assert "Conseil citoyen Quartier Nord" in choice.labels()


async def test_language_switch_before_consent_changes_the_notice(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    amina = emulator.resident(1005, first_name="Amina", language_code="fr")
    amina.send("/start quartier-nord")
    await amina.next_message()
    amina.tap("🌐 " + FR._("Language"))
    languages = await amina.next_message()
    assert languages.labels() == ["Français", "English", "العربية"]
    amina.tap("العربية")
    done = await amina.next_message()
    assert done.text == AR._("Done: I will write to you in {language}.").format(language="العربية")
    consent = await amina.next_message()
    amina.tap(AR._("✅ Yes, I agree"), consent)
    await amina.next_message()
    person = await person_of(bot, 1005)
    assert person is not None and person.locale == "ar"


async def test_language_command_after_onboarding(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(1006, first_name="Sam", language_code="fr")
    sam.send("/start quartier-nord")
    await sam.next_message()
    sam.tap(FR._("✅ Yes, I agree"))
    await sam.next_message()
    await sam.next_message()
    sam.send("/language")
    await sam.next_message()
    sam.tap("English")
    done = await sam.next_message()
    assert done.text == "Done: I will write to you in English."
    sam.send("/help")
    help_text = await sam.next_message()
    assert (help_text.text or "").startswith("Here is what you can do:")
    person = await person_of(bot, 1006)
    assert person is not None and person.locale == "en"


async def test_restart_in_the_middle_of_onboarding_resumes_at_the_same_step(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    first = await start_bot()
    nadia = emulator.resident(1007, first_name="Nadia", language_code="fr")
    nadia.send("/start quartier-nord")
    consent = await nadia.next_message()
    await first.stop()

    second = await start_bot()
    nadia.tap(FR._("✅ Yes, I agree"), consent)
    welcome = await nadia.next_message()
    assert "Conseil citoyen Quartier Nord" in (welcome.text or "")
    assert await person_of(second, 1007) is not None


async def test_start_again_when_already_a_member(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(1008, first_name="Sam", language_code="en")
    sam.send("/start quartier-nord")
    await sam.next_message()
    sam.tap(EN._("✅ Yes, I agree"))
    await sam.next_message()
    await sam.next_message()
    sam.send("/start quartier-nord")
    again = await sam.next_message()
    assert again.text == "You are already a member of Conseil citoyen Quartier Nord."
    assert await count_rows(bot, Person) == 1
