"""Every preview offers "Change": one part is asked again, nothing else, and the preview
comes back with it changed; what is sent is what the preview last showed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from storage.models import Call, Consultation, Council, Meeting, Question
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator, FakeUser, SentMessage
from tests.helpers import EN
from tests.test_calls import start_cooking_call
from tests.test_consultations import organiser_of as consultation_organiser
from tests.test_consultations import seed as seed_consultation
from tests.test_consultations import write as write_consultation
from tests.test_meetings import (
    local,
    meeting_day,
    organiser_of,
    seed_residents,
    write_meeting,
)
from tests.test_talents import coordinator_of, seed_directory

CHANGE = "✏️ Change"
T = TypeVar("T")


def text_of(message: SentMessage) -> str:
    return message.plain_text or ""


async def new(user: FakeUser, predicate: Callable[[SentMessage], bool]) -> SentMessage:
    """The next message to satisfy `predicate` among those not seen yet (then seen)."""
    while True:
        message = await user.next_message()
        if predicate(message):
            return message


async def change(user: FakeUser, preview: SentMessage, part: str) -> None:
    """Tap Change on the preview, then the part."""
    user.read_all()
    user.tap(CHANGE, preview)
    user.tap(part, await new(user, lambda m: text_of(m) == "What would you like to change?"))


async def preview_of(user: FakeUser) -> SentMessage:
    return await new(user, lambda m: text_of(m).startswith("Preview"))


async def stored(app: CoupDePouce, model: type[T]) -> list[T]:
    async def read(session: AsyncSession) -> list[T]:
        return list(await session.scalars(select(model)))

    found: list[T] = await in_transaction(app, read)
    return found


async def test_a_call_is_changed_part_by_part_from_its_preview(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    nadia = await coordinator_of(bot, emulator, council, 43_201)
    nadia.tap("3", await start_cooking_call(nadia))
    nadia.tap("In a week", await nadia.wait_for(lambda m: "In a week" in m.labels()))
    preview = await nadia.wait_for(lambda m: text_of(m).startswith("Preview"))
    assert "Repas solidaire" in text_of(preview)
    assert [label for label in preview.labels() if label.startswith("✏️")] == [CHANGE]

    await change(nadia, preview, "The title")
    assert text_of(await nadia.next_message()) == "Now: “Repas solidaire”"  # to copy, correct
    assert text_of(await nadia.next_message()).startswith("A call for talents")
    nadia.send("Repas solidaire de Noël")
    preview = await nadia.next_message()  # the preview at once: nothing else asked again
    assert "Repas solidaire de Noël" in text_of(preview)

    await change(nadia, preview, "How many people")
    nadia.tap("5", await new(nadia, lambda m: text_of(m) == "How many people are needed?"))
    preview = await preview_of(nadia)
    assert "5 people needed" in text_of(preview)

    await change(nadia, preview, "When help is needed")
    times = await nadia.wait_for(  # the menu, redrawn in place as the question
        lambda m: m.message_id > preview.message_id and text_of(m).startswith("When is help")
    )
    nadia.tap("Weekends", times)
    nadia.tap("✅ Done", await nadia.wait_for(lambda m: "✅ Weekends" in m.labels()))  # redrawn
    preview = await preview_of(nadia)
    assert "Evenings, Weekends" in text_of(preview)

    nadia.read_all()
    nadia.tap(CHANGE, preview)
    menu = await new(nadia, lambda m: text_of(m) == "What would you like to change?")
    nadia.tap("◀ Back", menu)  # changing nothing
    nadia.tap("Send", await preview_of(nadia))
    await nadia.wait_for(lambda m: text_of(m).startswith("On its way"))
    (call,) = await stored(bot, Call)
    assert (call.title, call.people_needed) == ("Repas solidaire de Noël", 5)
    assert call.needed_when == "evenings,weekends"


async def test_a_command_while_changing_a_part_starts_afresh(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    nadia = await coordinator_of(bot, emulator, council, 43_202)
    nadia.tap("3", await start_cooking_call(nadia))
    nadia.tap("In a week", await nadia.wait_for(lambda m: "In a week" in m.labels()))
    preview = await nadia.wait_for(lambda m: text_of(m).startswith("Preview"))
    await change(nadia, preview, "The title")
    await new(nadia, lambda m: text_of(m).startswith("A call for talents"))
    nadia.send("/call")  # a new call: its steps follow each other as usual
    await new(nadia, lambda m: text_of(m).startswith("A call for talents"))
    nadia.send("Jardinage")
    asked = await nadia.next_message()
    assert text_of(asked) == "Describe what is needed: what, where, when."


async def test_a_meeting_is_changed_from_its_preview_and_a_deadline_that_no_longer_fits_is_asked(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 51_201)
    preview = await write_meeting(oumar, deadline="Two days before")
    oumar.read_all()

    await change(oumar, preview, "The place")
    assert text_of(await oumar.next_message()) == "Now: “Maison de quartier, 3 rue des Lilas”"
    assert text_of(await oumar.next_message()).startswith("Where?")
    oumar.send("Salle Jean-Moulin, 12 avenue de la Gare")
    where = await oumar.next_message()
    assert text_of(where).startswith("To show it on a map")
    oumar.tap("Skip", where)  # the place's map location belongs to the place
    preview = await preview_of(oumar)
    assert "Salle Jean-Moulin" in text_of(preview)

    tomorrow = meeting_day() - timedelta(days=2)
    await change(oumar, preview, "The day and time")
    oumar.tap(EN.day_label(tomorrow), await new(oumar, lambda m: "Which day?" in text_of(m)))
    hours = await new(oumar, lambda m: text_of(m).startswith("At what time"))
    oumar.tap(EN.time_label(time(18)), hours)
    # Two days before tomorrow has passed: the deadline is asked again, then the preview.
    deadline = await oumar.next_message()
    assert text_of(deadline) == "Until when can residents answer?"
    assert "Two days before" not in deadline.labels()
    oumar.tap("The day before", deadline)
    preview = await preview_of(oumar)
    assert EN.time_label(time(18)) in text_of(preview)

    oumar.tap("Send", preview)
    await oumar.wait_for(lambda m: text_of(m).startswith("Invitations on their way"))
    (meeting,) = await stored(bot, Meeting)
    assert meeting.place == "Salle Jean-Moulin, 12 avenue de la Gare"
    assert meeting.starts_at == local(tomorrow, 18)
    assert meeting.ends_at - meeting.starts_at == timedelta(hours=3)  # its length kept
    assert meeting.rsvp_deadline == local(tomorrow, 18) - timedelta(days=1)


async def test_a_consultation_s_questions_are_rewritten_and_removed_from_its_preview(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_consultation(bot, emulator, council)
    oumar = await consultation_organiser(bot, emulator, council)
    preview = await write_consultation(oumar)
    oumar.read_all()

    await change(oumar, preview, "The questions")
    listed = await new(oumar, lambda m: text_of(m).startswith("Which question?"))
    assert "2. Vous sentez-vous en sécurité le soir ? (A scale from 1 to 5)" in text_of(listed)
    oumar.tap("✏️ Rewrite 2", listed)
    kind = await new(oumar, lambda m: text_of(m).startswith("Question 2:"))
    assert "✅ No more questions" not in kind.labels()
    oumar.tap("One choice", kind)
    assert text_of(await oumar.next_message()) == "Write question 2."
    oumar.send("Le soir, le square est-il…")
    assert text_of(await oumar.next_message()).startswith("Write the choices")
    oumar.send("Tranquille\nBruyant")
    listed = await oumar.next_message()  # back to the questions
    assert "2. Le soir, le square est-il… (One choice)" in text_of(listed)
    oumar.tap("🗑 Remove 3", listed)
    listed = await oumar.next_message()
    assert "3." not in text_of(listed)
    oumar.tap("✅ Done", listed)
    preview = await preview_of(oumar)
    assert "2. Le soir, le square est-il… (One choice)" in text_of(preview)
    assert "Une idée pour le quartier" not in text_of(preview)

    await change(oumar, preview, "Anonymous or with first names")
    oumar.tap("With first names", await new(oumar, lambda m: "With first names" in m.labels()))
    oumar.tap("Send", await preview_of(oumar))
    await oumar.wait_for(lambda m: text_of(m).startswith("On its way"))
    (consultation,) = await stored(bot, Consultation)
    assert not consultation.anonymous
    questions = sorted(await stored(bot, Question), key=lambda q: q.position)
    assert [(q.text, q.options) for q in questions] == [
        ("Que faire du square ?", ["Un jardin partagé", "Une aire de jeux", "Des bancs"]),
        ("Le soir, le square est-il…", ["Tranquille", "Bruyant"]),
    ]


async def test_an_announcement_s_text_is_changed_from_its_preview(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    reader = emulator.resident(41_001, language_code="en")
    nadia = await coordinator_of(bot, emulator, council, 43_203)
    nadia.read_all()
    nadia.send("/announce")
    await new(nadia, lambda m: text_of(m).startswith("Write your message"))
    nadia.send("Réunion samedi à 14 h, salle des fête.")
    preview = await preview_of(nadia)
    nadia.tap(CHANGE, preview)
    assert text_of(await nadia.next_message()) == "Now: “Réunion samedi à 14 h, salle des fête.”"
    assert text_of(await nadia.next_message()).startswith("Write your message")
    nadia.send("Réunion samedi à 14 h, salle des fêtes.")
    preview = await preview_of(nadia)
    assert "salle des fêtes." in text_of(preview)
    nadia.tap("Send", preview)
    await reader.wait_for(lambda m: "salle des fêtes." in text_of(m))
