"""Quick consultations: written by an organiser in chat, answered with buttons one question
at a time (skip, back, change), closed by the scheduler with figures, charts and a CSV for
the organiser and the council's group, a word back to each respondent, and anonymity that
holds after closing."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.consultations.jobs import CLOSE_CONSULTATIONS, OPEN_CONSULTATIONS
from flows.councils import create as create_council
from storage.models import (
    Ballot,
    Consultation,
    Council,
    Membership,
    Participant,
    Person,
    Response,
    Role,
    utcnow,
)
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator, FakeUser, SentMessage
from tests.factories import add_residents
from tests.helpers import EN, FR, onboard
from tests.test_talents import coordinator_of

# Residents of quartier-nord (neighbourhoods Les Tilleuls, La Gare, Le Centre), in English.
ANNA, BOB, CHLOE, DAVID, EVA, FARID = 61_001, 61_002, 61_003, 61_004, 61_005, 61_006
RESIDENTS = (ANNA, BOB, CHLOE, DAVID, EVA, FARID)
GROUP = -1_006_100


def text_of(message: SentMessage) -> str:
    return message.plain_text or ""


async def seed(app: CoupDePouce, emulator: BotApiEmulator, council: Council) -> None:
    async def add(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await add_residents(session, stored, list(RESIDENTS), ["en"])

    await in_transaction(app, add)
    for chat in RESIDENTS:
        emulator.resident(chat, language_code="en")


async def organiser_of(app: CoupDePouce, emulator: BotApiEmulator, council: Council) -> FakeUser:
    return await coordinator_of(app, emulator, council, 62_001, Role.ORGANISER, "Oumar")


async def write(
    oumar: FakeUser, *, anonymous: bool = True, live: bool = False, opens: str = "Now"
) -> SentMessage:
    """Three questions (one choice, a scale, a short text) to every member, for a week."""
    oumar.send("/consult")
    await oumar.wait_for(lambda m: text_of(m).startswith("A quick consultation"))
    oumar.send("Le square Pasteur")
    kind = await oumar.wait_for(lambda m: text_of(m).startswith("Question 1:"))
    oumar.tap("One choice", kind)
    await oumar.wait_for(lambda m: text_of(m).startswith("Write question 1."))
    oumar.send("Que faire du square ?")
    await oumar.wait_for(lambda m: text_of(m).startswith("Write the choices"))
    oumar.send("Un jardin partagé\nUne aire de jeux\n- Des bancs")
    oumar.tap(
        "A scale from 1 to 5", await oumar.wait_for(lambda m: text_of(m).startswith("Question 2:"))
    )
    await oumar.wait_for(lambda m: text_of(m).startswith("Write question 2."))
    oumar.send("Vous sentez-vous en sécurité le soir ?")
    oumar.tap("A short text", await oumar.wait_for(lambda m: text_of(m).startswith("Question 3:")))
    await oumar.wait_for(lambda m: text_of(m).startswith("Write question 3."))
    oumar.send("Une idée pour le quartier ?")
    more = await oumar.wait_for(lambda m: text_of(m).startswith("Question 4:"))
    oumar.tap("✅ No more questions", more)
    oumar.tap("Every member", await oumar.wait_for(lambda m: "Every member" in m.labels()))
    anonymity = await oumar.wait_for(lambda m: text_of(m).startswith("Anonymous answers"))
    oumar.tap("Anonymous (recommended)" if anonymous else "With first names", anonymity)
    visible = await oumar.wait_for(lambda m: text_of(m).startswith("May residents see"))
    oumar.tap("Yes, as answers come" if live else "No, only after closing (recommended)", visible)
    oumar.tap(opens, await oumar.wait_for(lambda m: text_of(m).startswith("When does it open?")))
    oumar.tap("In a week", await oumar.wait_for(lambda m: "In a week" in m.labels()))
    return await oumar.wait_for(lambda m: text_of(m).startswith("Preview"))


async def send(oumar: FakeUser, **options: bool | str) -> None:
    preview = await write(oumar, **options)  # type: ignore[arg-type]
    oumar.tap("Send", preview)
    await oumar.wait_for(lambda m: text_of(m).startswith(("On its way", "Saved: it opens")))


async def invitation(user: FakeUser) -> SentMessage:
    return await user.wait_for(
        lambda m: "Le square Pasteur" in text_of(m) and "✏️ Answer" in m.labels()
    )


async def question(user: FakeUser, number: int) -> SentMessage:
    return await user.wait_for(lambda m: text_of(m).startswith(f"{number}/3 · "))


async def answer_all(
    user: FakeUser, choice: str, scale: str, idea: str | None, where: str | None
) -> None:
    """Answer the three questions (None: skip the text) and say where one lives."""
    user.tap("✏️ Answer", await invitation(user))
    user.tap(choice, await question(user, 1))
    user.tap(scale, await question(user, 2))
    third = await question(user, 3)
    if idea is None:
        user.tap("Skip ⏭", third)
    else:
        user.send(idea)
    if where is not None:
        ask = await user.wait_for(lambda m: text_of(m).startswith("One last thing"))
        user.tap(where, ask)
    await user.wait_for(lambda m: text_of(m).startswith("Thank you! Your answers are saved."))


async def close_now(app: CoupDePouce) -> int:
    """Run the closing tick a week and a minute from now."""
    return await app.scheduler.tick(CLOSE_CONSULTATIONS, utcnow() + timedelta(days=7, minutes=1))


async def test_a_consultation_from_writing_to_results_for_the_council_and_each_respondent(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    group = emulator.group(GROUP, title="Conseil citoyen")
    nadia = await coordinator_of(bot, emulator, council, 62_002)
    group.send(nadia, "/register")
    await emulator.wait_until(lambda: group.inbox or None)
    registered = FR._(
        "This group now receives the results of {council}'s consultations and its digest."
    ).format(council="Conseil citoyen Quartier Nord")
    assert text_of(group.inbox[-1]) == registered  # in the council's language

    preview = await write(oumar)
    text = text_of(preview)
    assert text.startswith("Preview: this consultation will go to 8 residents.")
    assert "1. Que faire du square ? (One choice)" in text
    assert "   • Des bancs" in text
    assert "2. Vous sentez-vous en sécurité le soir ? (A scale from 1 to 5)" in text
    oumar.tap("Send", preview)

    people = {chat: emulator.resident(chat) for chat in RESIDENTS}
    first = await invitation(people[ANNA])
    assert "3 questions, about a minute." in text_of(first)
    assert "Your answers are anonymous." in text_of(first)

    # Five in Les Tilleuls, one in La Gare: the La Gare cell is too small to be shown.
    await answer_all(people[ANNA], "Un jardin partagé", "4", "Plus de lumière", "Les Tilleuls")
    await answer_all(people[BOB], "Un jardin partagé", "5", None, "Les Tilleuls")
    await answer_all(people[CHLOE], "Une aire de jeux", "2", "Des fleurs", "Les Tilleuls")
    await answer_all(people[DAVID], "Un jardin partagé", "3", None, "Les Tilleuls")
    await answer_all(people[EVA], "Des bancs", "4", None, "Les Tilleuls")
    await answer_all(people[FARID], "Une aire de jeux", "1", None, "La Gare")

    assert await close_now(bot) == 1
    assert await close_now(bot) == 0  # never twice
    summary = await oumar.wait_for(
        lambda m: text_of(m).startswith("📊 Results — Le square Pasteur")
    )
    lines = text_of(summary).splitlines()
    assert "6 of 8 answered (75%)." in lines
    assert "• Un jardin partagé: 3 (50%)" in lines
    assert "• Une aire de jeux: 2 (33%)" in lines
    assert "Average: 3.2 out of 5" in lines
    assert "2 answers" in lines and "• “Plus de lumière”" in lines
    assert "By neighbourhood: Les Tilleuls “Un jardin partagé” 60%" in text_of(summary)
    assert "La Gare" not in text_of(summary)  # a single respondent: hidden
    await oumar.wait_for(lambda m: len([x for x in oumar.inbox if x.photo is not None]) == 2)
    photos = [m for m in oumar.inbox if m.photo is not None]
    assert all(p.photo is not None and p.photo.startswith(b"\x89PNG") for p in photos)
    table = await oumar.wait_for(
        lambda m: m.document is not None and m.document[0].endswith(".csv")
    )
    assert table.document is not None
    rows = list(csv.reader(io.StringIO(table.document[1].decode("utf-8-sig"))))
    # In the organiser's language: English, with "," between cells and "." in decimals.
    assert rows[0] == ["Question", "Group", "Option", "Answers", "Share", "Respondents", "Average"]
    assert [
        "1. Que faire du square ?",
        "Everyone",
        "Un jardin partagé",
        "3",
        "0.500",
        "6",
        "",
    ] in rows
    assert [
        "1. Que faire du square ?",
        "Les Tilleuls",
        "Un jardin partagé",
        "3",
        "0.600",
        "5",
        "",
    ] in rows
    assert not [row for row in rows if row[1] == "La Gare"]
    assert ["3. Une idée pour le quartier ?", "Everyone", "Des fleurs", "", "", "", ""] in rows

    # The text, two charts and the CSV, paced as Telegram wants it in groups (20 a minute).
    await emulator.wait_until(lambda: len(group.inbox) >= 5 or None, timeout=20)
    assert any(text_of(m).startswith("📊 ") for m in group.inbox)

    back = await people[ANNA].wait_for(
        lambda m: text_of(m).startswith("📊 What your neighbourhood said")
    )
    assert "• Les Tilleuls: “Un jardin partagé” 60%" in text_of(back)
    assert "• Everyone: “Un jardin partagé” 50%" in text_of(back)
    farid = await people[FARID].wait_for(
        lambda m: text_of(m).startswith("📊 What your neighbourhood said")
    )
    assert "La Gare:" not in text_of(farid)  # too few to show their neighbourhood apart

    # Anonymous means anonymous: no answer points to anyone once closed.
    linked = await in_transaction(
        bot, lambda s: s.scalar(select(func.count()).where(Ballot.person_id.is_not(None)))
    )
    assert linked == 0
    assert (
        await in_transaction(bot, lambda s: s.scalar(select(func.count()).select_from(Participant)))
        == 6
    )
    assert (
        await in_transaction(bot, lambda s: s.scalar(select(func.count()).select_from(Response)))
        == 14
    )
    # Farid alone answered from La Gare: the raw answers no longer say where they come from,
    # and four others chosen at random join his, so that his is one among five.
    places = await in_transaction(bot, lambda s: s.scalars(select(Ballot.neighbourhood)))
    assert sorted(str(p) for p in places) == ["Les Tilleuls"] + ["None"] * 5

    # A late answer is answered kindly and not counted.
    people[BOB].tap("✏️ Answer", await invitation(people[BOB]))
    await people[BOB].wait_for(lambda m: text_of(m).startswith("This consultation is closed."))


async def test_skip_back_change_and_several_choices(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    oumar.send("/consult")
    await oumar.wait_for(lambda m: text_of(m).startswith("A quick consultation"))
    oumar.send("Fête des voisins")
    oumar.tap(
        "Several choices", await oumar.wait_for(lambda m: text_of(m).startswith("Question 1:"))
    )
    await oumar.wait_for(lambda m: text_of(m).startswith("Write question 1."))
    oumar.send("Que pouvez-vous apporter ?")
    await oumar.wait_for(lambda m: text_of(m).startswith("Write the choices"))
    oumar.send("Un plat")
    await oumar.wait_for(lambda m: text_of(m).startswith("Please write 2 to 8 choices"))
    oumar.send("Un plat\nDe la musique\nDes chaises")
    oumar.tap("One choice", await oumar.wait_for(lambda m: text_of(m).startswith("Question 2:")))
    await oumar.wait_for(lambda m: text_of(m).startswith("Write question 2."))
    oumar.send("Quel jour ?")
    await oumar.wait_for(lambda m: text_of(m).startswith("Write the choices"))
    oumar.send("Samedi\nDimanche")
    oumar.tap(
        "✅ No more questions", await oumar.wait_for(lambda m: text_of(m).startswith("Question 3:"))
    )
    oumar.tap("Every member", await oumar.wait_for(lambda m: "Every member" in m.labels()))
    oumar.tap("With first names", await oumar.wait_for(lambda m: "With first names" in m.labels()))
    oumar.tap(
        "Yes, as answers come", await oumar.wait_for(lambda m: "Yes, as answers come" in m.labels())
    )
    oumar.tap("Now", await oumar.wait_for(lambda m: "Now" in m.labels()))
    oumar.tap("In 2 days", await oumar.wait_for(lambda m: "In 2 days" in m.labels()))
    oumar.tap("Send", await oumar.wait_for(lambda m: text_of(m).startswith("Preview")))

    anna = emulator.resident(ANNA)
    invite = await anna.wait_for(lambda m: "Fête des voisins" in text_of(m))
    assert "Your answers are anonymous." not in text_of(invite)
    anna.tap("✏️ Answer", invite)
    first = await anna.wait_for(lambda m: text_of(m).startswith("1/2 · Que pouvez-vous apporter ?"))
    anna.tap("Un plat", first)
    first = await anna.wait_for(lambda m: "✅ Un plat" in m.labels())
    anna.tap("Des chaises", first)
    first = await anna.wait_for(lambda m: "✅ Des chaises" in m.labels())
    anna.tap("✅ Done", first)
    second = await anna.wait_for(lambda m: text_of(m).startswith("2/2 · Quel jour ?"))
    anna.tap("◀ Back", second)
    first = await anna.wait_for(
        lambda m: text_of(m).startswith("1/2") and "✅ Un plat" in m.labels()
    )
    anna.tap("Skip ⏭", first)  # skipping now removes the earlier answer
    anna.tap("Dimanche", await anna.wait_for(lambda m: text_of(m).startswith("2/2")))
    await anna.wait_for(lambda m: text_of(m).startswith("One last thing"))
    anna.tap("I'd rather not say")
    await anna.wait_for(lambda m: text_of(m).startswith("Thank you! Your answers are saved."))
    live = await anna.wait_for(
        lambda m: text_of(m).startswith("📊 Results so far — Fête des voisins")
    )
    assert "• Dimanche: 1 (100%)" in text_of(live)
    assert "• Un plat: 0 (0%)" in text_of(live)

    # Changing one's answer: tapping Answer again; the neighbourhood is not asked twice.
    anna.tap("✏️ Answer", invite)
    first = await anna.wait_for(
        lambda m: (
            text_of(m).startswith("1/2")
            and m.edited == 0
            and "Un plat" in m.labels()
            and m.message_id > live.message_id
        )
    )
    anna.tap("De la musique", first)
    anna.tap("✅ Done", await anna.wait_for(lambda m: "✅ De la musique" in m.labels()))
    anna.tap(
        "Samedi",
        await anna.wait_for(
            lambda m: text_of(m).startswith("2/2") and m.message_id > live.message_id
        ),
    )
    await anna.wait_for(
        lambda m: text_of(m).startswith("Thank you!") and m.message_id > live.message_id
    )

    async def answers(session: AsyncSession) -> list[tuple[str, int | None]]:
        rows = await session.execute(
            select(Response.question_id, Response.option).order_by(Response.question_id)
        )
        return [(str(q), o) for q, o in rows]

    found = await in_transaction(bot, answers)
    assert [option for _q, option in found] == [1, 0]  # music; Saturday
    neighbourhood = await in_transaction(
        bot,
        lambda s: s.scalar(
            select(Membership.neighbourhood)
            .join(Person)
            .where(Person.first_name == f"Habitant {ANNA}")
        ),
    )
    assert neighbourhood == ""  # would rather not say: not asked again

    # Named consultation: after closing, the answers still point to their authors.
    assert (
        await bot.scheduler.tick(CLOSE_CONSULTATIONS, utcnow() + timedelta(days=2, minutes=1)) == 1
    )
    linked = await in_transaction(
        bot, lambda s: s.scalar(select(func.count()).where(Ballot.person_id.is_not(None)))
    )
    assert linked == 1


async def test_a_consultation_opening_tomorrow_is_opened_by_the_scheduler(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar, opens="Tomorrow at 9:00")
    await emulator.wait_until_consumed()
    anna = emulator.resident(ANNA)
    assert not [m for m in anna.inbox if "Le square Pasteur" in text_of(m)]
    opens = await in_transaction(bot, lambda s: s.scalar(select(Consultation.opens_at)))
    assert await bot.scheduler.tick(OPEN_CONSULTATIONS, opens - timedelta(minutes=1)) == 0
    assert await bot.scheduler.tick(OPEN_CONSULTATIONS, opens) == 1
    assert await bot.scheduler.tick(OPEN_CONSULTATIONS, opens) == 0
    await invitation(anna)


async def test_closing_early_and_telling_participants_what_was_done(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar, anonymous=False)
    anna = emulator.resident(ANNA)
    await answer_all(anna, "Des bancs", "5", "Un banc à l'ombre", "La Gare")

    oumar.send("/results")
    card = await oumar.wait_for(lambda m: "⏹ Close now" in m.labels())
    assert "1 of 7 answered (14%)." in text_of(card)
    oumar.tap("📊 See the results", card)
    so_far = await oumar.wait_for(lambda m: text_of(m).startswith("📊 Results so far"))
    assert "• Habitant 61001: Un banc à l'ombre" not in text_of(so_far)
    assert "• “Habitant 61001: Un banc à l'ombre”" in text_of(so_far)  # named: with the name
    oumar.tap("⏹ Close now", card)
    oumar.tap("Yes, close it", await oumar.wait_for(lambda m: "Yes, close it" in m.labels()))
    await oumar.wait_for(lambda m: text_of(m).startswith("Closed. The results are on their way."))
    await oumar.wait_for(lambda m: text_of(m).startswith("📊 Results — Le square Pasteur"))
    await anna.wait_for(lambda m: text_of(m).startswith("📊 What your neighbourhood said"))
    assert await close_now(bot) == 0

    oumar.send("/results")
    card = await oumar.wait_for(lambda m: "💬 Tell them what we did" in m.labels())
    oumar.tap("💬 Tell them what we did", card)
    await oumar.wait_for(lambda m: text_of(m).startswith("Write what the council did"))
    oumar.send("Trois bancs seront posés en juin.")
    await oumar.wait_for(lambda m: text_of(m) == "Sent to 1 participant.")
    word = await anna.wait_for(lambda m: text_of(m).startswith("💬 What we did with your answers"))
    assert "Trois bancs seront posés en juin." in text_of(word)
    bob = emulator.resident(BOB)
    await emulator.wait_until_consumed()
    assert not [m for m in bob.inbox if text_of(m).startswith("💬")]  # did not take part


async def test_a_member_outside_a_neighbourhood_consultation_cannot_answer_with_a_copied_button(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar)
    anna, bob = emulator.resident(ANNA), emulator.resident(BOB)
    asked = await invitation(anna)

    async def for_les_tilleuls_only(session: AsyncSession) -> None:
        anna_id = await session.scalar(
            select(Person.id).where(Person.first_name == f"Habitant {ANNA}")
        )
        await session.execute(
            update(Membership)
            .where(Membership.person_id == anna_id)
            .values(neighbourhood="Les Tilleuls")
        )
        await session.execute(
            update(Consultation).values(audience="neighbourhood", neighbourhood="Les Tilleuls")
        )

    await in_transaction(bot, for_les_tilleuls_only)  # Bob lives elsewhere
    bob.tap_data(asked.buttons[0][0].callback_data or "", asked)  # Anna's button, passed on
    await emulator.wait_until(lambda: len(bob.answered_callbacks) == 1 or None, timeout=5)
    assert bob.answered_callbacks[0].params.get("text") == "Sorry, this button does not work."
    await emulator.wait_until_consumed()
    assert await in_transaction(bot, lambda s: s.scalar(select(func.count(Ballot.id)))) == 0
    assert not [m for m in bob.inbox if text_of(m).startswith("1/3 · ")]

    anna.tap("✏️ Answer", asked)  # the one in the audience still answers
    await question(anna, 1)


async def test_forged_buttons_and_people_outside_the_audience_change_nothing(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar)
    consultation_id = await in_transaction(bot, lambda s: s.scalar(select(Consultation.id)))
    await in_transaction(bot, lambda s: create_council(s, "quartier-sud", "Quartier Sud"))
    stranger = emulator.resident(62_100, language_code="en")
    await onboard(stranger, EN, slug="quartier-sud")

    async def leave(session: AsyncSession) -> None:  # a member who left the council since
        person = await session.scalar(select(Person).where(Person.first_name == f"Habitant {BOB}"))
        assert person is not None
        await session.execute(delete(Membership).where(Membership.person_id == person.id))

    await in_transaction(bot, leave)
    bob = emulator.resident(BOB)
    anna = emulator.resident(ANNA)
    before = len(stranger.answered_callbacks)
    stranger.tap_data(f"cons:{consultation_id}", await invitation(anna))  # another council
    bob.tap_data(f"cons:{consultation_id}", await invitation(anna))
    anna.tap_data(f"cons:{consultation_id + 7}", await invitation(anna))
    anna.tap_data(f"cso:{consultation_id}:close", await invitation(anna))
    await emulator.wait_until(
        lambda: (
            (
                len(stranger.answered_callbacks) == before + 1
                and len(anna.answered_callbacks) == 2
                and len(bob.answered_callbacks) == 1
            )
            or None
        ),
        timeout=5,
    )
    taps = [
        *stranger.answered_callbacks[before:],
        *anna.answered_callbacks,
        *bob.answered_callbacks,
    ]
    assert {c.params.get("text") for c in taps} == {"Sorry, this button does not work."}
    assert (
        await in_transaction(bot, lambda s: s.scalar(select(func.count()).select_from(Ballot))) == 0
    )
    status = await in_transaction(bot, lambda s: s.scalar(select(Consultation.status)))
    assert status == "open"


async def test_only_a_coordinator_registers_the_group(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    group = emulator.group(GROUP - 1)
    resident = emulator.resident(62_200, language_code="en")
    await onboard(resident, EN)
    group.send(resident, "/register")
    await emulator.wait_until(lambda: group.inbox or None)
    assert text_of(group.inbox[-1]) == "Only a coordinator of the council can register this group."
    registered = await in_transaction(bot, lambda s: s.scalar(select(Council.group_chat_id)))
    assert registered is None


async def test_mydata_tells_what_is_kept_of_consultations(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar)
    anna = emulator.resident(ANNA)
    await answer_all(anna, "Des bancs", "5", "Un banc à l'ombre", "La Gare")

    async def my_data() -> dict[str, Any]:
        anna.send("/mydata")
        sent = await anna.wait_for(
            lambda m: (
                m.document is not None and m.document[0] == "mydata.json" and m.message_id > mark
            )
        )
        assert sent.document is not None
        data: dict[str, Any] = json.loads(sent.document[1])
        return data

    mark = 0
    data = await my_data()
    [open_one] = data["consultations"]
    assert open_one["answers"] == [
        {"question": "Que faire du square ?", "answer": "Des bancs"},
        {"question": "Vous sentez-vous en sécurité le soir ?", "answer": "5"},
        {"question": "Une idée pour le quartier ?", "answer": "Un banc à l'ombre"},
    ]
    mark = anna.inbox[-1].message_id
    assert await close_now(bot) == 1
    data = await my_data()
    [closed] = data["consultations"]
    assert closed["answers"] == []
    assert "anonymous" in closed["note"]


async def test_a_neighbourhood_consultation_reaches_that_neighbourhood_only(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)

    async def places(session: AsyncSession) -> None:
        for chat, place in ((ANNA, "La Gare"), (BOB, "Le Centre")):
            person = await session.scalar(
                select(Person).where(Person.first_name == f"Habitant {chat}")
            )
            assert person is not None
            await session.execute(
                update(Membership)
                .where(Membership.person_id == person.id)
                .values(neighbourhood=place)
            )

    await in_transaction(bot, places)
    oumar = await organiser_of(bot, emulator, council)
    oumar.send("/consult")
    await oumar.wait_for(lambda m: text_of(m).startswith("A quick consultation"))
    oumar.send("Travaux rue de la Gare")
    oumar.tap(
        "A scale from 1 to 5", await oumar.wait_for(lambda m: text_of(m).startswith("Question 1:"))
    )
    await oumar.wait_for(lambda m: text_of(m).startswith("Write question 1."))
    oumar.send("Le bruit vous gêne-t-il ?")
    oumar.tap(
        "✅ No more questions", await oumar.wait_for(lambda m: text_of(m).startswith("Question 2:"))
    )
    oumar.tap(
        "One neighbourhood", await oumar.wait_for(lambda m: "One neighbourhood" in m.labels())
    )
    oumar.tap("La Gare", await oumar.wait_for(lambda m: text_of(m) == "Which neighbourhood?"))
    oumar.tap(
        "Anonymous (recommended)", await oumar.wait_for(lambda m: "With first names" in m.labels())
    )
    oumar.tap(
        "No, only after closing (recommended)",
        await oumar.wait_for(lambda m: "Yes, as answers come" in m.labels()),
    )
    oumar.tap("Now", await oumar.wait_for(lambda m: "Now" in m.labels()))
    oumar.tap("In a week", await oumar.wait_for(lambda m: "In a week" in m.labels()))
    preview = await oumar.wait_for(lambda m: text_of(m).startswith("Preview"))
    assert text_of(preview).startswith("Preview: this consultation will go to 1 resident.")
    oumar.tap("Send", preview)
    await emulator.resident(ANNA).wait_for(lambda m: "Travaux rue de la Gare" in text_of(m))
    await emulator.wait_until_consumed()
    assert not [m for m in emulator.resident(BOB).inbox if "Travaux" in text_of(m)]
