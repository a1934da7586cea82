"""The talent directory: a resident joins in a few taps, edits and leaves; a coordinator
searches it, and sees first names and skills, never contact details or another council."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.app import CoupDePouce
from flows.councils import create as create_council
from flows.i18n import Translator
from flows.talents.jobs import REFRESH_PROFILES
from storage.models import Council, Identity, Role, RoleGrant, Skill, TalentProfile, utcnow
from storage.queries import people, talents
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator, FakeUser, SentMessage
from tests.factories import add_residents
from tests.helpers import EN, FR, onboard, read_csv, run_cli


async def profile_of(app: CoupDePouce, telegram_id: int) -> TalentProfile | None:
    async def run(session: AsyncSession) -> TalentProfile | None:
        return await session.scalar(
            select(TalentProfile)
            .join(Identity, Identity.person_id == TalentProfile.person_id)
            .where(Identity.external_id == str(telegram_id))
            .options(selectinload(TalentProfile.skills))
        )

    found: TalentProfile | None = await in_transaction(app, run)
    return found


async def skill_keys(app: CoupDePouce, talent: TalentProfile) -> set[str]:
    async def run(session: AsyncSession) -> set[str]:
        ids = [link.skill_id for link in talent.skills]
        return set(await session.scalars(select(Skill.key).where(Skill.id.in_(ids))))

    keys: set[str] = await in_transaction(app, run)
    return keys


async def join_directory(user: FakeUser, skills: dict[str, list[str]], t: Translator = EN) -> None:
    """Play a resident opening the directory and ticking skills, category by category.

    The picker is one message, redrawn at every tap.
    """
    user.send("/talents")
    await user.next_message()  # what the directory is
    picker = await user.next_message()
    picker_id = picker.message_id
    back, done = "◀ " + t._("Back"), "✅ " + t._("Done")

    def redrawn(label: str) -> Callable[[SentMessage], bool]:
        return lambda m: m.message_id == picker_id and label in m.labels()

    for category, names in skills.items():
        user.tap(category, picker)
        ticks = await user.wait_for(redrawn(back))
        for name in names:
            user.tap(name, ticks)
            ticks = await user.wait_for(redrawn(f"✅ {name}"))
        user.tap(back, ticks)
        picker = await user.wait_for(redrawn(done))
    user.tap(done, picker)


async def test_a_resident_joins_the_directory_in_a_few_taps(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    amina = emulator.resident(40_001, first_name="Amina", language_code="en")
    await onboard(amina, EN)
    before = len(amina.inbox)
    await join_directory(amina, {"Home and repairs": ["Cooking", "Sewing"]})
    await amina.wait_for(lambda m: (m.text or "").startswith("Anything else"))
    amina.send("I can lend a drill")
    availability = await amina.wait_for(lambda m: (m.text or "").startswith("When are you"))
    amina.tap("Evenings", availability)
    availability = await amina.wait_for(lambda m: "✅ Evenings" in m.labels())
    amina.tap("Weekends", availability)
    availability = await amina.wait_for(lambda m: "✅ Weekends" in m.labels())
    amina.tap("✅ Done", availability)
    place = await amina.wait_for(lambda m: "Les Tilleuls" in m.labels())
    amina.tap("La Gare", place)
    contact = await amina.wait_for(lambda m: "Yes, directly" in m.labels())
    amina.tap("Yes, directly", contact)
    await amina.wait_for(lambda m: (m.text or "").startswith("Welcome to the talent directory"))
    shown = await amina.wait_for(lambda m: (m.text or "").startswith("Your profile"))
    assert "Skills: Cooking, Sewing" in (shown.text or "")
    assert "Free: Evenings, Weekends" in (shown.text or "")
    # Choosing skills redrew one message rather than adding one per tap.
    assert len(amina.inbox) - before <= 9

    talent = await profile_of(bot, 40_001)
    assert talent is not None
    assert await skill_keys(bot, talent) == {"cooking", "sewing"}
    assert (talent.weekdays, talent.evenings, talent.weekends) == (False, True, True)
    assert (talent.neighbourhood, talent.contact_ok, talent.own_words) == (
        "La Gare",
        True,
        "I can lend a drill",
    )


async def test_translators_are_asked_their_languages(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    karim = emulator.resident(40_002, first_name="Karim", language_code="fr")
    await onboard(karim, FR)
    await join_directory(karim, {FR._("Languages and paperwork"): [FR._("Translation")]}, FR)
    asked = await karim.wait_for(
        lambda m: (
            (m.text or "")
            == FR._("Which languages do you speak? For example: Arabic, Tamazight, English.")
        )
    )
    karim.send("arabe, kabyle")
    await karim.wait_for(lambda m: m.message_id != asked.message_id and FR._("Skip") in m.labels())
    talent_draft = await profile_of(bot, 40_002)
    assert talent_draft is None  # nothing saved before the end


async def test_edit_and_leave(bot: CoupDePouce, emulator: BotApiEmulator, council: Council) -> None:
    sam = emulator.resident(40_003, first_name="Sam", language_code="en")
    await onboard(sam, EN)
    await join_directory(sam, {"Outdoors and sport": ["Gardening"]})
    sam.tap("Skip", await sam.wait_for(lambda m: (m.text or "").startswith("Anything else")))
    sam.tap("✅ Done", await sam.wait_for(lambda m: (m.text or "").startswith("When are you")))
    sam.tap("I'd rather not say", await sam.wait_for(lambda m: "I'd rather not say" in m.labels()))
    sam.tap(
        "Only through the bot", await sam.wait_for(lambda m: "Only through the bot" in m.labels())
    )
    profile = await sam.wait_for(lambda m: (m.text or "").startswith("Your profile"))

    sam.tap("Free time", profile)
    availability = await sam.wait_for(lambda m: bool(m.buttons) and "Weekdays" in m.labels())
    sam.tap("Weekdays", availability)
    availability = await sam.wait_for(lambda m: "✅ Weekdays" in m.labels())
    sam.tap("✅ Done", availability)
    updated = await sam.wait_for(lambda m: "Free: Weekdays" in (m.text or ""))
    talent = await profile_of(bot, 40_003)
    assert talent is not None and talent.weekdays

    sam.tap("Leave the directory", updated)
    sam.tap("Yes, leave", await sam.wait_for(lambda m: "Yes, leave" in m.labels()))
    await sam.wait_for(lambda m: (m.text or "").startswith("You have left the directory"))
    assert await profile_of(bot, 40_003) is None


async def seed_directory(app: CoupDePouce, council: Council) -> None:
    """Three residents of the council in the directory, and one of another council."""

    async def run(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        other = await create_council(session, "centre", "Conseil du Centre")
        here = await add_residents(session, stored, [41_001, 41_002, 41_003], locales=("en",))
        there = await add_residents(session, other, [41_100])
        cooking = await talents.skill_by_key(session, stored.id, "cooking")
        garden = await talents.skill_by_key(session, stored.id, "gardening")
        other_cooking = await talents.skill_by_key(session, other.id, "cooking")
        assert cooking and garden and other_cooking
        rows = [
            (here[0], stored, [cooking.id], True, "La Gare"),
            (here[1], stored, [cooking.id, garden.id], False, "Les Tilleuls"),
            (here[2], stored, [garden.id], True, None),
            (there[0], other, [other_cooking.id], True, None),
        ]
        for person, place, skills, evenings, hood in rows:
            talent = TalentProfile(
                council_id=place.id, person_id=person.id, evenings=evenings, neighbourhood=hood
            )
            session.add(talent)
            await session.flush()
            await talents.set_skills(session, talent, skills)

    await in_transaction(app, run)


async def coordinator_of(
    app: CoupDePouce,
    emulator: BotApiEmulator,
    council: Council,
    user_id: int,
    role: Role = Role.COORDINATOR,
    first_name: str = "Nadia",
) -> FakeUser:
    """A staff member of the council (a coordinator unless told), onboarded, in English."""

    async def grant(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await people.grant_role(session, stored, "telegram", str(user_id), role)

    await in_transaction(app, grant)
    coordinator = emulator.resident(user_id, first_name=first_name, language_code="en")
    await onboard(coordinator, EN)
    return coordinator


async def test_a_coordinator_searches_by_skill_time_and_place(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    nadia = await coordinator_of(bot, emulator, council, 42_001)
    nadia.send("/search")
    skill = await nadia.next_message()
    nadia.tap("Home and repairs", skill)
    nadia.tap("Cooking", await nadia.wait_for(lambda m: "Cooking" in m.labels()))
    nadia.tap("Evenings", await nadia.wait_for(lambda m: "Evenings" in m.labels()))
    nadia.tap(
        "Any neighbourhood", await nadia.wait_for(lambda m: "Any neighbourhood" in m.labels())
    )
    results = await nadia.wait_for(lambda m: "found" in (m.text or ""))
    assert (results.text or "").splitlines() == [
        "1 person found — 1/1",
        "1. Habitant 41001 — Cooking — Evenings — La Gare",
    ]
    assert "@" not in (results.text or "")

    nadia.tap("New search", results)
    nadia.tap("Any skill", await nadia.wait_for(lambda m: "Any skill" in m.labels()))
    nadia.tap("Any time", await nadia.wait_for(lambda m: "Any time" in m.labels()))
    nadia.tap(
        "Any neighbourhood", await nadia.wait_for(lambda m: "Any neighbourhood" in m.labels())
    )
    everyone = await nadia.wait_for(lambda m: "3 people found" in (m.text or ""))
    assert "41100" not in (everyone.text or "")  # another council's resident


async def test_residents_cannot_search_and_forged_taps_are_refused(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    sam = emulator.resident(42_002, language_code="en")
    await onboard(sam, EN)
    sam.send("/search")
    assert (
        await sam.next_message()
    ).text == "This command is for council coordinators and organisers."

    nadia = await coordinator_of(bot, emulator, council, 42_003)
    nadia.send("/search")
    skill = await nadia.next_message()
    data = skill.buttons[0][0].callback_data
    assert data is not None
    answered = len(nadia.answered_callbacks)
    nadia.tap_data(data.replace("cat:", "cat:x"), skill)  # a category never offered
    await emulator.wait_until(lambda: len(nadia.answered_callbacks) > answered or None, 5)
    assert nadia.answered_callbacks[-1].params.get("text") == "Sorry, this button does not work."

    async def revoke(session: AsyncSession) -> None:
        await session.execute(delete(RoleGrant).where(RoleGrant.external_id == "42003"))

    await in_transaction(bot, revoke)  # the role is taken away in the middle of a search
    nadia.tap("Home and repairs", skill)
    refused = await nadia.wait_for(
        lambda m: m.text == "This command is for council coordinators and organisers."
    )
    assert refused.buttons == []


async def test_export_shows_contacts_only_with_consent(
    bot: CoupDePouce, council: Council, database_url: str
) -> None:
    await seed_directory(bot, council)

    async def consent_for_one(session: AsyncSession) -> None:
        await session.execute(update(Identity).values(username="voisin"))
        first = await session.scalar(select(TalentProfile).order_by(TalentProfile.id))
        assert first is not None
        first.contact_ok = True

    await in_transaction(bot, consent_for_one)
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli(
        "export", "talents", "--council", "quartier-nord", "--format", "json", env=env
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [row["first_name"] for row in rows] == [
        "Habitant 41001",
        "Habitant 41002",
        "Habitant 41003",
    ]
    assert [row["contact"] for row in rows] == ["@voisin", "", ""]
    assert rows[1]["skills"] == "Cuisine, Jardinage"  # in the council's language
    code, out, err = await run_cli("export", "talents", "--council", "quartier-nord", env=env)
    assert code == 0, err
    assert out.splitlines()[0].startswith("\ufeffPrénom;Savoir-faire;Langues;")  # French
    rows_read = read_csv(out, ";")
    # "@" starts a formula in some spreadsheets: the handle is quoted, as a resident's words.
    assert [row["Contact"] for row in rows_read] == ["'@voisin", "", ""]
    assert [row["Masqué"] for row in rows_read] == ["non", "non", "non"]
    assert rows_read[1]["Savoir-faire"] == "Cuisine, Jardinage"
    code, _out, err = await run_cli("export", "talents", "--council", "nowhere", env=env)
    assert code == 2 and "no council" in err


async def test_the_catalogue_is_edited_without_code(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    code, _out, err = await run_cli(
        "skills",
        "add",
        "quartier-nord",
        "bike_repair",
        "--category",
        "home",
        "--label",
        "fr:Réparation de vélos",
        "--label",
        "en:Bike repair",
        env=env,
    )
    assert code == 0, err
    code, _out, err = await run_cli("skills", "remove", "quartier-nord", "sewing", env=env)
    assert code == 0, err
    sam = emulator.resident(40_010, language_code="en")
    await onboard(sam, EN)
    sam.send("/talents")
    await sam.next_message()
    picker = await sam.next_message()
    sam.tap("Home and repairs", picker)
    home = await sam.wait_for(
        lambda m: m.message_id == picker.message_id and "◀ Back" in m.labels()
    )
    assert home.labels() == ["Cooking", "DIY and repairs", "Bike repair", "◀ Back"]


async def test_stale_profiles_are_asked_then_hidden_until_confirmed(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    member = emulator.resident(41_001, language_code="en")
    for other in (41_002, 41_003, 41_100):
        emulator.resident(other)
    long_ago = utcnow() - timedelta(days=200)

    async def age(session: AsyncSession) -> None:
        await session.execute(
            update(TalentProfile)
            .where(TalentProfile.council_id == council.id)
            .values(confirmed_at=long_ago)
        )

    await in_transaction(bot, age)
    asked = await bot.scheduler.tick(REFRESH_PROFILES)
    assert asked == 3
    assert await bot.scheduler.tick(REFRESH_PROFILES) == 0  # asked once, not at every tick
    bot.dispatcher.wake()
    question = await member.wait_for(lambda m: "is it still right?" in (m.text or ""))
    # Another member's copy of the buttons confirms nothing (the month below still hides 3).
    neighbour = emulator.resident(41_002)
    answered = len(neighbour.answered_callbacks)
    neighbour.tap_data(question.button("✅ Still right").callback_data or "", question)
    await emulator.wait_until(lambda: len(neighbour.answered_callbacks) > answered or None, 5)
    toast = neighbour.answered_callbacks[-1].params.get("text")
    assert toast in {
        EN._("Sorry, this button does not work."),
        FR._("Sorry, this button does not work."),
    }

    async def a_month_passes(session: AsyncSession) -> None:
        await session.execute(
            update(TalentProfile)
            .where(TalentProfile.refresh_asked_at.is_not(None))
            .values(refresh_asked_at=utcnow() - timedelta(days=31))
        )

    await in_transaction(bot, a_month_passes)
    assert await bot.scheduler.tick(REFRESH_PROFILES) == 3  # hidden
    nadia = await coordinator_of(bot, emulator, council, 42_010)
    nadia.send("/search")
    nadia.tap("Any skill", await nadia.wait_for(lambda m: "Any skill" in m.labels()))
    nadia.tap("Any time", await nadia.wait_for(lambda m: "Any time" in m.labels()))
    nadia.tap(
        "Any neighbourhood", await nadia.wait_for(lambda m: "Any neighbourhood" in m.labels())
    )
    await nadia.wait_for(lambda m: m.text == "Nobody in the directory matches this search.")

    member.tap("✅ Still right", question)
    await member.wait_for(lambda m: (m.text or "").startswith("Thank you: your profile stays"))
    nadia.tap("New search", await nadia.wait_for(lambda m: "New search" in m.labels()))
    nadia.tap("Any skill", await nadia.wait_for(lambda m: "Any skill" in m.labels()))
    nadia.tap("Any time", await nadia.wait_for(lambda m: "Any time" in m.labels()))
    nadia.tap(
        "Any neighbourhood", await nadia.wait_for(lambda m: "Any neighbourhood" in m.labels())
    )
    found = await nadia.wait_for(lambda m: "1 person found" in (m.text or ""))
    assert "Habitant 41001" in (found.text or "")


async def test_a_deep_link_opens_the_directory_right_after_joining(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, database_url: str
) -> None:
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--talents",
        env={"DATABASE_URL": database_url, "TELEGRAM_BOT_USERNAME": "nord_bot"},
    )
    assert code == 0, err
    link = out.splitlines()[0]
    assert link == "https://t.me/nord_bot?start=quartier-nord__talents"
    lina = emulator.resident(40_020, language_code="en")
    lina.send("/start " + link.split("start=")[1])
    lina.tap("✅ Yes, I agree", await lina.next_message())
    await lina.wait_for(lambda m: (m.text or "").startswith("Thank you! You are now a member"))
    await lina.wait_for(lambda m: (m.text or "").startswith("What can you lend a hand with?"))


async def test_a_neighbourhood_told_already_is_offered_to_confirm(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    bilal = emulator.resident(40_011, first_name="Bilal", language_code="en")
    await onboard(bilal, EN)

    async def told(session: AsyncSession) -> None:  # as answering a consultation records it
        person = await people.person_by_identity(session, "telegram", "40011")
        assert person is not None
        membership = await people.membership(session, person, council)
        assert membership is not None
        membership.neighbourhood = "La Gare"

    await in_transaction(bot, told)
    await join_directory(bilal, {"Home and repairs": ["Cooking"]})
    await bilal.wait_for(lambda m: (m.text or "").startswith("Anything else"))
    bilal.send("Rien")
    availability = await bilal.wait_for(lambda m: (m.text or "").startswith("When are you"))
    bilal.tap("✅ Done", availability)
    place = await bilal.wait_for(lambda m: "Les Tilleuls" in m.labels())
    assert place.text == "You told us you live in La Gare: tap it to confirm, or choose another."
    assert place.labels()[0] == "✅ La Gare" and "La Gare" not in place.labels()
    bilal.tap("✅ La Gare", place)
    bilal.tap("Yes, directly", await bilal.wait_for(lambda m: "Yes, directly" in m.labels()))
    await bilal.wait_for(lambda m: (m.text or "").startswith("Your profile"))
    talent = await profile_of(bot, 40_011)
    assert talent is not None and talent.neighbourhood == "La Gare"
