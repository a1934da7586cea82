"""Meeting invitations: written by an organiser in chat, answered with one tap, with a
calendar file, seats and a waiting list, change and cancellation notices, and reminders
that the scheduler sends once, on time, to those coming or maybe, across restarts."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.councils import create as create_council
from flows.meetings.flow import parse_day, parse_time
from flows.meetings.jobs import MEETING_REMINDERS
from storage.models import (
    Council,
    Meeting,
    MeetingInvite,
    MeetingReminder,
    ReminderStatus,
    Role,
    utcnow,
)
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator, FakeUser, SentMessage
from tests.factories import add_residents
from tests.helpers import AR, EN, FR, onboard
from tests.test_talents import coordinator_of

PARIS = ZoneInfo("Europe/Paris")
ANNA, BOB, CHLOE, DAVID = 51_001, 51_002, 51_003, 51_004  # residents: en, fr, ar, en
OUTSIDER = 51_100  # a resident of another council


async def organiser_of(
    app: CoupDePouce, emulator: BotApiEmulator, council: Council, user_id: int
) -> FakeUser:
    return await coordinator_of(app, emulator, council, user_id, Role.ORGANISER, "Oumar")


async def seed_residents(app: CoupDePouce, emulator: BotApiEmulator, council: Council) -> None:
    async def seed(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await add_residents(session, stored, [ANNA, BOB, CHLOE, DAVID], ["en", "fr", "ar", "en"])

    await in_transaction(app, seed)
    for chat, language in ((ANNA, "en"), (BOB, "fr"), (CHLOE, "ar"), (DAVID, "en")):
        emulator.resident(chat, language_code=language)


def meeting_day() -> date:
    return utcnow().astimezone(PARIS).date() + timedelta(days=3)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def text_of(message: SentMessage) -> str:
    return message.plain_text or ""


async def write_meeting(
    oumar: FakeUser,
    *,
    capacity: str = "No limit",
    deadline: str = "No deadline",
    note: str | None = None,
    location: tuple[float, float] | None = None,
) -> SentMessage:
    """Play the organiser writing a meeting on meeting_day() at 14:00 for 3 hours."""
    oumar.send("/meeting")
    await oumar.wait_for(lambda m: text_of(m).startswith("A new meeting"))
    oumar.send("Conseil citoyen de décembre")
    await oumar.wait_for(lambda m: text_of(m).startswith("What is it about?"))
    oumar.send("Budget participatif et fête de quartier.")
    await oumar.wait_for(lambda m: text_of(m).startswith("Where?"))
    oumar.send("Maison de quartier, 3 rue des Lilas")
    where = await oumar.wait_for(lambda m: text_of(m).startswith("To show it on a map"))
    assert text_of(where).endswith("\nTap 📎, then Location.")  # how Telegram shares a place
    if location is None:
        oumar.tap("Skip", where)
    else:
        oumar.send_location(*location)
    days = await oumar.wait_for(lambda m: text_of(m).startswith("Which day?"))
    oumar.tap(EN.day_label(meeting_day()), days)
    hours = await oumar.wait_for(lambda m: text_of(m).startswith("At what time"))
    oumar.tap(EN.time_label(time(14)), hours)
    oumar.tap("3 hours", await oumar.wait_for(lambda m: "3 hours" in m.labels()))
    places = await oumar.wait_for(lambda m: text_of(m).startswith("How many places?"))
    if capacity == "No limit":
        oumar.tap("No limit", places)
    else:
        oumar.send(capacity)
    who = await oumar.wait_for(lambda m: text_of(m).startswith("Who is invited?"))
    oumar.tap("Every member", who)
    oumar.tap(deadline, await oumar.wait_for(lambda m: deadline in m.labels()))
    reminders = await oumar.wait_for(lambda m: text_of(m).startswith("Reminders go to"))
    if note is not None:
        oumar.tap("Add a personal line", reminders)
        await oumar.wait_for(lambda m: text_of(m).startswith("Write the line"))
        oumar.send(note)
        reminders = await oumar.wait_for(lambda m: "Your line:" in text_of(m))
    oumar.tap("✅ Done", reminders)
    return await oumar.wait_for(lambda m: text_of(m).startswith("Preview"))


async def send_meeting(oumar: FakeUser, **options: str | tuple[float, float] | None) -> None:
    preview = await write_meeting(oumar, **options)  # type: ignore[arg-type]
    oumar.tap("Send", preview)
    await oumar.wait_for(lambda m: text_of(m).startswith("Invitations on their way"))


async def invitation_for(user: FakeUser) -> SentMessage:
    return await user.wait_for(lambda m: "Conseil citoyen de décembre" in text_of(m))


def calendar_of(message: SentMessage) -> Any:  # icalendar's properties are a wide union

    assert message.document is not None, "the message carries no calendar file"
    filename, content = message.document
    assert filename.endswith(".ics")
    return icalendar.Calendar.from_ical(content)


def event_of(message: SentMessage) -> Any:
    events = calendar_of(message).walk("VEVENT")
    assert len(events) == 1
    return events[0]


async def invites(app: CoupDePouce) -> dict[str, tuple[str, int, list[str]]]:
    """first name -> (answer, guests, needs)."""

    async def run(session: AsyncSession) -> dict[str, tuple[str, int, list[str]]]:
        from storage.models import Person

        rows = await session.execute(
            select(
                Person.first_name, MeetingInvite.rsvp, MeetingInvite.guests, MeetingInvite.needs
            ).join(Person, Person.id == MeetingInvite.person_id)
        )
        return {name: (str(rsvp), guests, list(needs)) for name, rsvp, guests, needs in rows}

    found: dict[str, tuple[str, int, list[str]]] = await in_transaction(app, run)
    return found


def name(chat: int) -> str:
    return f"Habitant {chat}"


async def the_meeting(app: CoupDePouce) -> Meeting:
    found: Meeting = await in_transaction(app, lambda s: s.scalar(select(Meeting)))
    return found


async def come(user: FakeUser, invitation: SentMessage | None = None) -> None:
    """Answer "I'm coming", alone and needing nothing."""
    invitation = invitation or await invitation_for(user)
    user.tap("Just me", await answer(user, invitation, "✅ I'm coming", "See you there!"))
    user.tap("Nothing else", await user.wait_for(lambda m: "Nothing else" in m.labels()))
    await user.wait_for(lambda m: text_of(m).startswith("All set."))


async def answer(user: FakeUser, invitation: SentMessage, label: str, expect: str) -> SentMessage:
    user.tap(label, invitation)
    return await user.wait_for(lambda m: text_of(m).startswith(expect))


# --- the stories -----------------------------------------------------------------------------


async def test_an_invitation_says_when_and_where_in_each_language_with_a_calendar_file(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_001)
    preview = await write_meeting(oumar, location=(48.8566, 2.3522))
    assert text_of(preview).startswith("Preview: this invitation will go to 5 residents.")
    assert "Reminders: The day before, 2 hours before" in text_of(preview)
    oumar.tap("Send", preview)

    start = local(meeting_day(), 14)
    for chat, t in ((ANNA, EN), (BOB, FR), (CHLOE, AR)):
        invitation = await invitation_for(emulator.resident(chat))
        text = text_of(invitation)
        assert t.moment(start, "Europe/Paris") in text
        assert "Maison de quartier, 3 rue des Lilas" in text
        assert invitation.labels() == [
            "✅ " + t._("I'm coming"),
            "🤔 " + t._("Maybe"),
            "❌ " + t._("I can't come"),
        ]
        event = event_of(invitation)
        assert event["dtstart"].dt == start
        assert str(event["dtstart"].dt.tzinfo) == "Europe/Paris"
        assert event["dtstart"].params["TZID"] == "Europe/Paris"
        assert event["dtend"].dt == local(meeting_day(), 17)
        assert str(event["location"]) == "Maison de quartier, 3 rue des Lilas"
        assert str(event["description"]) == "Budget participatif et fête de quartier."
        assert str(event["summary"]) == "Conseil citoyen de décembre"
        assert event["sequence"] == 0
        assert str(event["uid"]).endswith("@coupdepouce")
        assert event["geo"].latitude == pytest.approx(48.8566)
        assert str(calendar_of(invitation)["method"]) == "PUBLISH"
        assert calendar_of(invitation).walk("VTIMEZONE"), "the time zone travels with the file"
    fr_text = text_of(await invitation_for(emulator.resident(BOB)))
    fr_day = FR.day(local(meeting_day(), 14), "Europe/Paris")  # "samedi 5 décembre 2026"
    assert f"🗓 {fr_day} à 14:00, jusqu\u2019à 17:00" in fr_text
    en_text = text_of(await invitation_for(emulator.resident(ANNA)))
    assert "at 2:00\u202fPM to 5:00\u202fPM" in en_text  # Babel's narrow no-break spaces


async def test_each_answer_can_change_and_coming_asks_guests_and_needs(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_002)
    await send_meeting(oumar)
    anna = emulator.resident(ANNA)
    invitation = await invitation_for(anna)

    guests = await answer(anna, invitation, "✅ I'm coming", "See you there!")
    assert guests.labels() == ["Just me", "+1", "+2", "+3"]
    anna.tap("+1", guests)
    needs = await anna.wait_for(lambda m: text_of(m).startswith("Do you need anything"))
    assert needs.labels()[-1] == "Nothing else"
    anna.tap("Childcare", needs)
    needs = await anna.wait_for(lambda m: "✅ Childcare" in m.labels())
    anna.tap("Done", needs)
    done = await anna.wait_for(lambda m: text_of(m).startswith("All set."))
    assert "Maison de quartier" in text_of(done)
    assert (await invites(bot))[name(ANNA)] == ("coming", 1, ["childcare"])

    await answer(anna, invitation, "🤔 Maybe", "Noted: maybe.")
    assert (await invites(bot))[name(ANNA)] == ("maybe", 0, [])
    await answer(anna, invitation, "❌ I can't come", "Noted. Thank you")
    assert (await invites(bot))[name(ANNA)] == ("declined", 0, [])
    guests = await answer(anna, invitation, "✅ I'm coming", "See you there!")
    anna.tap("Just me", guests)
    anna.tap("Nothing else", await anna.wait_for(lambda m: "Nothing else" in m.labels()))
    await anna.wait_for(lambda m: text_of(m).startswith("All set."))
    assert (await invites(bot))[name(ANNA)] == ("coming", 0, [])

    oumar.send("/meetings")
    card = await oumar.wait_for(lambda m: "👥 Who answered" in m.labels())
    assert "✅ 1 coming" in text_of(card)
    assert "4 without answer" in text_of(card)  # Bob, Chloé, David and Oumar
    oumar.tap("👥 Who answered", card)
    who = await oumar.wait_for(lambda m: "Coming (" in text_of(m))
    assert f"Coming (1)\n• {name(ANNA)}" in text_of(who)


async def test_a_full_meeting_has_a_waiting_list_and_a_freed_place_goes_to_the_first(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_003)
    await send_meeting(oumar, capacity="2")
    anna, bob, david = (emulator.resident(chat) for chat in (ANNA, BOB, DAVID))

    await come(anna)
    # One place left: David cannot bring anyone.
    guests = await answer(david, await invitation_for(david), "✅ I'm coming", "See you there!")
    assert guests.labels() == ["Just me"]
    david.tap("Just me", guests)
    david.tap("Nothing else", await david.wait_for(lambda m: "Nothing else" in m.labels()))
    await david.wait_for(lambda m: text_of(m).startswith("All set."))

    bob_invitation = await invitation_for(bob)
    bob.tap("✅ " + FR._("I'm coming"), bob_invitation)
    full = FR._(
        "The meeting is full: you are number {position} on the waiting list. "
        "I will tell you as soon as a place is free."
    )
    waiting = await bob.wait_for(lambda m: text_of(m).startswith(full.split("{")[0]))
    assert FR.number(1) in text_of(waiting)
    assert (await invites(bot))[name(BOB)][0] == "waiting"

    await answer(anna, await invitation_for(anna), "❌ I can't come", "Noted. Thank you")
    seat = await bob.wait_for(
        lambda m: text_of(m).startswith("🎉 " + FR._("A place is free: you are now registered."))
    )
    assert "Maison de quartier" in text_of(seat)
    assert FR.moment(local(meeting_day(), 14), "Europe/Paris") in text_of(seat)
    answers = await invites(bot)
    assert answers[name(BOB)][0] == "coming"
    assert answers[name(ANNA)][0] == "declined"


async def test_moving_and_cancelling_tell_everyone_who_did_not_decline(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_004)
    await send_meeting(oumar)
    anna, david = emulator.resident(ANNA), emulator.resident(DAVID)
    invitation = await invitation_for(anna)
    await answer(anna, invitation, "🤔 Maybe", "Noted: maybe.")
    await answer(david, await invitation_for(david), "❌ I can't come", "Noted. Thank you")
    old_reminders = await pending_reminders(bot)
    assert len(old_reminders) == 2

    oumar.send("/meetings")
    card = await oumar.wait_for(lambda m: "🕑 Change the time" in m.labels())
    oumar.tap("🕑 Change the time", card)
    days = await oumar.wait_for(lambda m: text_of(m).startswith("The new day?"))
    new_day = meeting_day() + timedelta(days=1)
    oumar.tap(EN.day_label(new_day), days)
    await oumar.wait_for(lambda m: text_of(m).startswith("The new starting time?"))
    oumar.send("18h30")
    await oumar.wait_for(lambda m: text_of(m).startswith("Moved."))

    notice = await anna.wait_for(lambda m: text_of(m).startswith("⚠️ Change to a meeting"))
    text = text_of(notice)
    assert f"New time (it was {EN.moment(local(meeting_day(), 14), 'Europe/Paris')})." in text
    assert EN.moment(local(new_day, 18, 30), "Europe/Paris") in text
    assert "Maison de quartier" in text
    event = event_of(notice)
    assert event["sequence"] == 1
    assert event["dtstart"].dt == local(new_day, 18, 30)
    assert event["dtend"].dt == local(new_day, 21, 30)  # the same three hours
    await emulator.resident(BOB).wait_for(lambda m: "⚠️" in text_of(m))  # no answer yet: told
    await emulator.wait_until_consumed()
    assert not [m for m in david.inbox if "⚠️" in text_of(m)]  # declined: not told

    moved = await pending_reminders(bot)
    new_start = local(new_day, 18, 30).astimezone(ZoneInfo("UTC"))
    assert sorted(r.due_at for r in moved) == [
        new_start - timedelta(hours=24),
        new_start - timedelta(hours=2),
    ]
    assert all(r.sequence == 1 for r in moved)
    old_day_before = local(meeting_day(), 14).astimezone(ZoneInfo("UTC")) - timedelta(hours=24)
    assert await bot.scheduler.tick(MEETING_REMINDERS, old_day_before) == 0  # made for old time

    oumar.send("/meetings")
    oumar.tap(
        "📍 Change the place", await oumar.wait_for(lambda m: "📍 Change the place" in m.labels())
    )
    await oumar.wait_for(lambda m: text_of(m).startswith("The new place?"))
    oumar.send("Gymnase Jean-Moulin")
    await oumar.wait_for(lambda m: text_of(m).startswith("Changed."))
    notice = await anna.wait_for(lambda m: "Gymnase Jean-Moulin" in text_of(m))
    assert "New place (it was Maison de quartier, 3 rue des Lilas)." in text_of(notice)
    assert str(event_of(notice)["location"]) == "Gymnase Jean-Moulin"

    oumar.send("/meetings")
    oumar.tap(
        "🚫 Cancel the meeting",
        await oumar.wait_for(lambda m: "🚫 Cancel the meeting" in m.labels()),
    )
    oumar.tap("Yes, cancel it", await oumar.wait_for(lambda m: "Yes, cancel it" in m.labels()))
    await oumar.wait_for(lambda m: text_of(m).startswith("The meeting is cancelled"))
    cancelled = await anna.wait_for(lambda m: text_of(m).startswith("❌ Meeting cancelled"))
    assert "Gymnase Jean-Moulin" in text_of(cancelled)
    assert str(calendar_of(cancelled)["method"]) == "CANCEL"
    assert event_of(cancelled)["sequence"] == 3
    assert str(event_of(cancelled)["status"]) == "CANCELLED"
    assert await pending_reminders(bot) == []
    await answer(anna, invitation, "✅ I'm coming", "This meeting was cancelled.")


async def pending_reminders(app: CoupDePouce) -> list[MeetingReminder]:
    found: list[MeetingReminder] = await in_transaction(
        app,
        lambda s: s.scalars(
            select(MeetingReminder).where(MeetingReminder.status == ReminderStatus.PENDING)
        ),
    )
    return list(found)


async def reminders_received(emulator: BotApiEmulator, chat: int) -> list[SentMessage]:
    await emulator.wait_until_consumed()
    return [m for m in emulator.resident(chat).inbox if text_of(m).startswith("⏰")]


async def test_reminders_go_on_time_once_to_those_coming_or_maybe(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_005)
    await send_meeting(oumar, note="Apportez un plat à partager !")
    anna, bob, david = (emulator.resident(chat) for chat in (ANNA, BOB, DAVID))
    await come(anna)
    maybe = FR._("Noted: maybe. You can change your answer until {date}.")
    await answer(bob, await invitation_for(bob), "🤔 " + FR._("Maybe"), maybe.split("{")[0])
    await answer(david, await invitation_for(david), "❌ I can't come", "Noted. Thank you")
    start = local(meeting_day(), 14).astimezone(ZoneInfo("UTC"))

    assert await bot.scheduler.tick(MEETING_REMINDERS, start - timedelta(hours=25)) == 0
    assert await bot.scheduler.tick(MEETING_REMINDERS, start - timedelta(hours=24)) == 1
    assert await bot.scheduler.tick(MEETING_REMINDERS, start - timedelta(hours=23)) == 0
    reminder = await anna.wait_for(lambda m: text_of(m).startswith("⏰ Reminder"))
    assert EN.moment(start, "Europe/Paris") in text_of(reminder)
    assert "Maison de quartier" in text_of(reminder)
    assert "Apportez un plat à partager !" in text_of(reminder)
    await bob.wait_for(lambda m: text_of(m).startswith("⏰"))
    assert await reminders_received(emulator, DAVID) == []  # declined
    assert await reminders_received(emulator, CHLOE) == []  # never answered

    bob.send("/stop")
    await bob.wait_for(lambda m: "/start" in text_of(m))
    assert await bot.scheduler.tick(MEETING_REMINDERS, start - timedelta(hours=2)) == 1
    await anna.wait_for(lambda m: len([x for x in anna.inbox if text_of(x).startswith("⏰")]) == 2)
    assert len(await reminders_received(emulator, BOB)) == 1  # said /stop: no second one
    assert await bot.scheduler.tick(MEETING_REMINDERS, start + timedelta(minutes=1)) == 0


async def test_a_reminder_due_while_the_bot_was_down_goes_out_once_after_the_restart(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    first = await start_bot()
    await seed_residents(first, emulator, council)
    oumar = await organiser_of(first, emulator, council, 52_006)
    await send_meeting(oumar)
    anna = emulator.resident(ANNA)
    await come(anna)
    start = local(meeting_day(), 14).astimezone(ZoneInfo("UTC"))
    due = start - timedelta(hours=2)

    the_day_before = start - timedelta(hours=24)
    assert await first.scheduler.tick(MEETING_REMINDERS, the_day_before) == 1
    assert await first.scheduler.tick(MEETING_REMINDERS, due - timedelta(minutes=1)) == 0
    await first.stop()  # killed a minute before the two-hour reminder

    second = await start_bot()  # back five minutes after it was due
    assert await second.scheduler.tick(MEETING_REMINDERS, due + timedelta(minutes=5)) == 1
    assert await second.scheduler.tick(MEETING_REMINDERS, due + timedelta(minutes=6)) == 0
    await anna.wait_for(lambda m: len([x for x in anna.inbox if text_of(x).startswith("⏰")]) == 2)
    await emulator.wait_until_consumed()
    assert len(await reminders_received(emulator, ANNA)) == 2


async def test_a_reminder_whose_moment_passed_long_ago_is_dropped_and_logged(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_007)
    await send_meeting(oumar)
    anna = emulator.resident(ANNA)
    await answer(anna, await invitation_for(anna), "🤔 Maybe", "Noted: maybe.")
    start = local(meeting_day(), 14).astimezone(ZoneInfo("UTC"))
    with caplog.at_level(logging.WARNING, logger="flows.meetings.service"):
        # Down from before the day-before reminder until ten minutes after the two-hour one
        # (within its grace of half an hour).
        at = start - timedelta(hours=2) + timedelta(minutes=10)
        assert await bot.scheduler.tick(MEETING_REMINDERS, at) == 1
    assert "reminder for meeting" in caplog.text and "dropped" in caplog.text
    statuses = await in_transaction(
        bot,
        lambda s: s.execute(select(MeetingReminder.hours_before, MeetingReminder.status)),
    )
    assert sorted((h, str(st)) for h, st in statuses) == [(2, "sent"), (24, "dropped")]
    await anna.wait_for(lambda m: text_of(m).startswith("⏰"))
    assert len(await reminders_received(emulator, ANNA)) == 1


async def test_two_processes_on_one_database_send_each_reminder_once(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    import asyncio

    one = await start_bot()
    two = await start_bot()
    await seed_residents(one, emulator, council)
    oumar = await organiser_of(one, emulator, council, 52_008)
    await send_meeting(oumar)
    anna = emulator.resident(ANNA)
    await answer(anna, await invitation_for(anna), "🤔 Maybe", "Noted: maybe.")
    start = local(meeting_day(), 14).astimezone(ZoneInfo("UTC"))
    at = start - timedelta(hours=23)
    done = await asyncio.gather(
        *(app.scheduler.tick(MEETING_REMINDERS, at) for app in (one, two, one, two))
    )
    assert sum(done) == 1
    await anna.wait_for(lambda m: text_of(m).startswith("⏰"))
    await asyncio.sleep(0.5)
    assert len(await reminders_received(emulator, ANNA)) == 1


async def test_answers_close_at_the_deadline_and_forged_buttons_change_nothing(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_009)
    await send_meeting(oumar, deadline="The day before")
    anna = emulator.resident(ANNA)
    invitation = await invitation_for(anna)
    assert "Please answer by" in text_of(invitation)
    meeting = await the_meeting(bot)

    await in_transaction(bot, lambda s: create_council(s, "quartier-sud", "Quartier Sud"))
    outsider = emulator.resident(OUTSIDER, language_code="en")
    await onboard(outsider, EN, slug="quartier-sud")  # a resident of another council
    before = len(outsider.answered_callbacks)  # the consent button
    outsider.tap_data(f"mtg:{meeting.id}:coming", invitation)
    outsider.tap_data(f"mtg:{meeting.id + 1}:coming", invitation)
    anna.tap_data(f"mtg:{meeting.id}:always", invitation)
    anna.tap_data(f"mto:{meeting.id}:cancel", invitation)  # an organiser's button
    await emulator.wait_until(
        lambda: (
            (len(outsider.answered_callbacks) == before + 2 and len(anna.answered_callbacks) == 2)
            or None
        ),
        timeout=5,
    )
    taps = [*outsider.answered_callbacks[before:], *anna.answered_callbacks]
    toasts = {c.params.get("text") for c in taps}
    assert toasts == {"Sorry, this button does not work."}
    assert all(answer == "invited" for answer, _g, _n in (await invites(bot)).values())
    assert (await the_meeting(bot)).status == "scheduled"

    async def past_deadline(session: AsyncSession) -> None:
        await session.execute(update(Meeting).values(rsvp_deadline=utcnow() - timedelta(minutes=1)))

    await in_transaction(bot, past_deadline)
    await answer(anna, invitation, "✅ I'm coming", "Answers are closed for this meeting.")
    assert (await invites(bot))[name(ANNA)][0] == "invited"


async def test_a_member_who_was_not_invited_cannot_answer_with_a_copied_button(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_011)
    await send_meeting(oumar)
    anna = emulator.resident(ANNA)
    invitation = await invitation_for(anna)

    async def member_never_invited(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await add_residents(session, stored, [51_005], ["en"])

    await in_transaction(bot, member_never_invited)  # a member, but not among the invited
    eve = emulator.resident(51_005, language_code="en")
    told = len(oumar.inbox)
    eve.tap_data(invitation.buttons[0][0].callback_data or "", invitation)  # Anna's "coming"
    await emulator.wait_until(lambda: len(eve.answered_callbacks) == 1 or None, timeout=5)
    assert eve.answered_callbacks[0].params.get("text") == "Sorry, this button does not work."
    await emulator.wait_until_consumed()
    assert "Habitant 51005" not in await invites(bot)  # nothing recorded
    assert all(answer == "invited" for answer, _g, _n in (await invites(bot)).values())
    assert eve.inbox == []  # nobody told: not Eve, not the organiser
    assert not [m for m in oumar.inbox[told:] if "51005" in text_of(m)]

    await answer(anna, invitation, "✅ I'm coming", "See you there!")  # the invited still can
    assert (await invites(bot))[name(ANNA)][0] == "coming"


async def test_a_resident_who_joins_after_the_invitations_is_invited_on_joining(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_012)
    await send_meeting(oumar)
    newcomer = emulator.resident(51_200, first_name=name(51_200), language_code="en")
    await onboard(newcomer, EN)
    invitation = await invitation_for(newcomer)
    assert invitation.document is not None  # with its calendar file
    await come(newcomer, invitation)
    assert (await invites(bot))[name(51_200)][0] == "coming"
    # Joining again (another link of the same council) invites nobody twice.
    newcomer.send("/start quartier-nord")
    await newcomer.wait_for(lambda m: "already a member" in text_of(m))
    assert len([m for m in newcomer.inbox if "Conseil citoyen de décembre" in text_of(m)]) == 1


async def test_residents_cannot_organise_and_a_resident_of_another_council_is_not_invited(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    resident = emulator.resident(52_010, language_code="en")
    await onboard(resident, EN)
    resident.send("/meeting")
    await resident.wait_for(
        lambda m: text_of(m) == "This command is for council coordinators and organisers."
    )
    resident.send("/meetings")
    await resident.wait_for(
        lambda m: text_of(m) == "This command is for council coordinators and organisers."
    )


async def test_attendance_is_marked_once_the_meeting_started(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_011)
    await send_meeting(oumar)
    anna = emulator.resident(ANNA)
    await come(anna)

    async def started(session: AsyncSession) -> None:
        now = utcnow()
        await session.execute(
            update(Meeting).values(
                starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
            )
        )

    await in_transaction(bot, started)
    oumar.send("/meetings")
    card = await oumar.wait_for(lambda m: "✔️ Mark attendance" in m.labels())
    assert "🕑 Change the time" not in card.labels()
    oumar.tap("✔️ Mark attendance", card)
    names = await oumar.wait_for(lambda m: text_of(m).startswith("Who came to"))
    oumar.tap("◻️ " + name(ANNA), names)
    names = await oumar.wait_for(lambda m: "✅ " + name(ANNA) in m.labels())
    oumar.tap("✅ Done", names)
    await oumar.wait_for(lambda m: text_of(m) == "Saved: 1 came.")
    attended = await in_transaction(bot, lambda s: s.scalars(select(MeetingInvite.attended)))
    assert sorted(a is True for a in attended).count(True) == 1


def test_typed_dates_and_times_are_read_the_way_people_write_them() -> None:
    first = date(2026, 11, 22)
    assert parse_day("5/12", first) == date(2026, 12, 5)
    assert parse_day("05/12/2026", first) == date(2026, 12, 5)
    assert parse_day("2026-12-05", first) == date(2026, 12, 5)
    assert parse_day("3/1", first) == date(2027, 1, 3)  # next January
    assert parse_day("31/02", first) is None
    assert parse_day("21/11/2026", first) is None  # the past
    assert parse_day("demain", first) is None
    assert parse_time("14:30") == time(14, 30)
    assert parse_time("14h30") == time(14, 30)
    assert parse_time("9h") == time(9)
    assert parse_time("25:00") is None
    assert parse_time("midi") is None


async def test_mydata_lists_meeting_answers_and_forget_erases_them(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    oumar = await organiser_of(bot, emulator, council, 52_012)
    anna = emulator.resident(52_013, first_name="Anna", language_code="en")
    await onboard(anna, EN)
    await send_meeting(oumar)
    invitation = await invitation_for(anna)
    anna.tap("+2", await answer(anna, invitation, "✅ I'm coming", "See you there!"))
    needs = await anna.wait_for(lambda m: text_of(m).startswith("Do you need anything"))
    anna.tap("Interpreting", needs)
    await anna.wait_for(lambda m: "✅ Interpreting" in m.labels())
    anna.send("/mydata")
    sent = await anna.wait_for(lambda m: m.document is not None and m.document[0] == "mydata.json")
    assert sent.document is not None
    [meeting] = json.loads(sent.document[1])["meetings"]
    assert meeting["meeting"] == "Conseil citoyen de décembre"
    assert (meeting["answer"], meeting["guests"], meeting["needs"]) == (
        "coming",
        2,
        ["interpreting"],
    )

    anna.send("/forget")
    erase = await anna.wait_for(lambda m: "Yes, erase everything" in m.labels())
    anna.tap("Yes, erase everything", erase)
    await anna.wait_for(lambda m: "erased" in text_of(m).lower())
    assert set(await invites(bot)) == {"Oumar"}


async def test_at_the_rsvp_deadline_the_organiser_gets_the_count(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_residents(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council, 52_014)
    await send_meeting(oumar, deadline="Two days before")
    anna, david = emulator.resident(ANNA), emulator.resident(DAVID)
    anna.tap("+1", await answer(anna, await invitation_for(anna), "✅ I'm coming", "See"))
    anna.tap("Nothing else", await anna.wait_for(lambda m: "Nothing else" in m.labels()))
    await answer(david, await invitation_for(david), "❌ I can't come", "Noted. Thank you")
    deadline = local(meeting_day() - timedelta(days=2), 14).astimezone(ZoneInfo("UTC"))
    assert await bot.scheduler.tick(MEETING_REMINDERS, deadline - timedelta(minutes=1)) == 0
    assert await bot.scheduler.tick(MEETING_REMINDERS, deadline) == 1
    summary = await oumar.wait_for(lambda m: text_of(m).startswith("Answers are closed for"))
    assert "✅ 1 coming (+1 guest) · 🤔 0 maybe · ❌ 1 declined" in text_of(summary)
    assert "3 without answer" in text_of(summary)


async def test_a_meeting_for_those_who_offered_help_on_a_call(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    from storage.models import Answer, Call, CallAnswer, CallStatus, Person

    await seed_residents(bot, emulator, council)

    async def helpers(session: AsyncSession) -> None:
        call = Call(
            council_id=council.id,
            title="Repas solidaire",
            description="Cuisiner",
            skill_ids=[],
            needed_when="",
            people_needed=3,
            deadline=utcnow() + timedelta(days=3),
            status=CallStatus.OPEN,
        )
        session.add(call)
        await session.flush()
        rows = await session.execute(select(Person.first_name, Person.id))
        ids = {first_name: person_id for first_name, person_id in rows}
        for who, said in ((ANNA, Answer.YES), (BOB, Answer.MAYBE), (CHLOE, Answer.NO)):
            session.add(CallAnswer(call_id=call.id, person_id=ids[name(who)], answer=said))

    await in_transaction(bot, helpers)
    oumar = await organiser_of(bot, emulator, council, 52_015)
    oumar.send("/meeting")
    await oumar.wait_for(lambda m: text_of(m).startswith("A new meeting"))
    oumar.send("Préparation du repas")
    oumar.tap("Skip", await oumar.wait_for(lambda m: text_of(m).startswith("What is it about?")))
    await oumar.wait_for(lambda m: text_of(m).startswith("Where?"))
    oumar.send("Cuisine du centre social")
    oumar.tap("Skip", await oumar.wait_for(lambda m: text_of(m).startswith("To show it")))
    await oumar.wait_for(lambda m: text_of(m).startswith("Which day?"))
    oumar.send(meeting_day().strftime("%d/%m/%Y"))
    await oumar.wait_for(lambda m: text_of(m).startswith("At what time"))
    oumar.send("18h")
    oumar.tap("1 hour", await oumar.wait_for(lambda m: "1 hour" in m.labels()))
    oumar.tap("No limit", await oumar.wait_for(lambda m: "No limit" in m.labels()))
    who = await oumar.wait_for(lambda m: text_of(m).startswith("Who is invited?"))
    oumar.tap("Those who offered help on a call", who)
    oumar.tap("Repas solidaire", await oumar.wait_for(lambda m: "Repas solidaire" in m.labels()))
    oumar.tap("No deadline", await oumar.wait_for(lambda m: "No deadline" in m.labels()))
    reminders = await oumar.wait_for(lambda m: text_of(m).startswith("Reminders go to"))
    oumar.tap("✅ The day before", reminders)
    oumar.tap("✅ 2 hours before", await oumar.wait_for(lambda m: "The day before" in m.labels()))
    oumar.tap("✅ Done", await oumar.wait_for(lambda m: "2 hours before" in m.labels()))
    preview = await oumar.wait_for(lambda m: text_of(m).startswith("Preview"))
    assert text_of(preview).startswith("Preview: this invitation will go to 2 residents.")
    assert "Reminders: none" in text_of(preview)
    assert EN.moment(local(meeting_day(), 18), "Europe/Paris") in text_of(preview)
    oumar.tap("Send", preview)
    await oumar.wait_for(lambda m: text_of(m).startswith("Invitations on their way"))
    await emulator.resident(ANNA).wait_for(lambda m: "Préparation du repas" in text_of(m))
    await emulator.resident(BOB).wait_for(lambda m: "Préparation du repas" in text_of(m))
    await emulator.wait_until_consumed()
    for chat in (CHLOE, DAVID):
        assert not [m for m in emulator.resident(chat).inbox if "Préparation" in text_of(m)]
    assert await pending_reminders(bot) == []
