"""WhatsApp: residents join from a wa.me link, answer with buttons and lists, get invitations
as templates outside the 24-hour window and the full message once they open it; the webhook
refuses what Meta did not sign and processes a message once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.channels.whatsapp.payloads import join_text
from flows.announcements import service as announcements
from flows.broadcasts import service as broadcasts
from flows.consultations.jobs import CLOSE_CONSULTATIONS
from storage.models import (
    Ballot,
    Conversation,
    Council,
    Identity,
    MeetingInvite,
    OutboxMessage,
    Person,
    PersonStatus,
    Role,
    Rsvp,
    utcnow,
)
from storage.queries import outbox, people
from tests.conftest import WA_VERIFY_TOKEN, StartBot, in_transaction, whatsapp_settings
from tests.emulator import BotApiEmulator, FakeUser
from tests.factories import add_whatsapp_residents
from tests.helpers import AR, EN, FR, count_rows, onboard
from tests.test_calls import send_cooking_call
from tests.test_meetings import organiser_of, send_meeting, text_of
from tests.test_talents import coordinator_of
from tests.test_units import tally
from tests.whatsapp_emulator import CloudApiEmulator, FakeWhatsAppUser, SentMessage

AMINA, KARIM, SALMA = "33612345001", "33612345002", "213550000003"
ORGANISER = "33612345999"
StartWhatsApp = Callable[..., Awaitable[CoupDePouce]]


@pytest.fixture
def start_wa(start_bot: StartBot, whatsapp: CloudApiEmulator) -> StartWhatsApp:
    """Start the bot with Telegram and WhatsApp, Meta posting its webhooks to it."""

    async def start(**overrides: Any) -> CoupDePouce:
        app = await start_bot(**(whatsapp_settings(whatsapp) | overrides))
        whatsapp.webhook_url = f"http://127.0.0.1:{app.port}/whatsapp"
        return app

    return start


@pytest.fixture
async def wa_bot(start_wa: StartWhatsApp) -> CoupDePouce:
    return await start_wa()


def text(message: SentMessage) -> str:
    return message.text or ""


def labels(message: SentMessage) -> list[str]:
    """What the person can tap on a message: its reply buttons or its list's rows."""
    return [*message.buttons, *message.rows]


async def choose(user: FakeWhatsAppUser, label: str, message: SentMessage | None = None) -> int:
    """Tap the button or list row showing `label`, cut to WhatsApp's limits or not."""
    message = message or next(m for m in reversed(user.inbox) if m.buttons or m.rows)
    for title in [*message.buttons, *message.rows]:
        if title == label or (title.endswith("…") and label.startswith(title[:-1])):
            return await user.tap(title, message)
    raise AssertionError(f"no {label!r} among {message.buttons or message.rows}")


async def join(user: FakeWhatsAppUser, t: Any = FR, slug: str = "quartier-nord") -> None:
    """Write the wa.me link's message, consent, and read the welcome."""
    assert await user.send(join_text(t, slug)) == 200
    consent = await user.wait_for(lambda m: t._("Do you agree?") in text(m))
    assert await choose(user, t._("✅ Yes, I agree"), consent) == 200
    await user.wait_for(lambda m: t._("Here is what you can do:") in text(m))


async def next_after(user: FakeWhatsAppUser, count: int) -> SentMessage:
    """The first message the person gets once they have `count`."""
    await user.wait_for(lambda _message: len(user.inbox) > count)
    return user.inbox[count]


async def identity(app: CoupDePouce, wa_id: str) -> Identity | None:
    async def find(session: AsyncSession) -> Identity | None:
        return await session.scalar(
            select(Identity).where(Identity.channel == "whatsapp", Identity.external_id == wa_id)
        )

    found: Identity | None = await in_transaction(app, find)
    return found


async def close_window(app: CoupDePouce, user: FakeWhatsAppUser) -> None:
    """The person last wrote 25 hours ago, for us and for Meta."""

    async def age(session: AsyncSession) -> None:
        await session.execute(
            update(Identity)
            .where(Identity.channel == "whatsapp", Identity.external_id == user.wa_id)
            .values(last_inbound_at=utcnow() - timedelta(hours=25))
        )

    await in_transaction(app, age)
    user.last_inbound_at = time.time() - 25 * 3600


async def test_a_newcomer_joins_from_the_wa_me_link_in_french(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    amina = whatsapp.user(AMINA, name="Amina")
    await amina.send(join_text(FR, "quartier-nord"))
    consent = await amina.next_message()
    assert "Bonjour Amina" in text(consent)
    assert "Conseil citoyen Quartier Nord" in text(consent)
    # Three choices: WhatsApp reply buttons, labels within 20 characters, and the full
    # wording of a label that had to be cut in the message itself.
    agree = FR._("✅ Yes, I agree")
    assert consent.buttons == [
        "✅ Oui, je suis d'ac…",
        FR._("No, thanks"),
        "🌐 " + FR._("Language"),
    ]
    assert f"• {agree}" in text(consent)
    assert await count_rows(wa_bot, Person) == 0  # nothing kept before consent

    await choose(amina, agree)
    welcome = await amina.next_message()
    assert text(welcome) == FR._("Thank you! You are now a member of {council}.").format(
        council="Conseil citoyen Quartier Nord"
    )
    menu = await amina.next_message()
    assert "/mydata" in text(menu)
    found = await identity(wa_bot, AMINA)
    assert found is not None and found.preferred
    assert found.last_inbound_at is not None  # WhatsApp's window, counted from her message

    async def person(session: AsyncSession) -> Person:
        return await session.get_one(Person, found.person_id)

    stored: Person = await in_transaction(wa_bot, person)
    assert (stored.first_name, stored.locale) == ("Amina", "fr")


async def test_a_newcomer_joins_in_arabic_and_types_commands_as_words(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    salma = whatsapp.user(SALMA, name="Salma")
    await salma.send(join_text(AR, "quartier-nord"))
    consent = await salma.next_message()
    assert AR._("Do you agree?") in text(consent)
    await choose(salma, AR._("✅ Yes, I agree"))
    await salma.wait_for(lambda m: AR._("Here is what you can do:") in text(m))

    for word in ("مساعدة", "aide", "HELP", "/help"):
        before = len(salma.inbox)
        await salma.send(word)
        answer = await next_after(salma, before)
        assert AR._("Here is what you can do:") in text(answer), word


async def test_stop_and_start_words(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    karim = whatsapp.user(KARIM, name="Karim")
    await join(karim)
    await karim.send("STOP")
    stopped = FR._(
        "Done: you will receive no more messages from the council. "
        "Send /start to receive them again."
    )
    await karim.wait_for(lambda m: text(m) == stopped)
    found = await identity(wa_bot, KARIM)
    assert found is not None

    async def status(session: AsyncSession) -> PersonStatus:
        return (await session.get_one(Person, found.person_id)).status

    assert await in_transaction(wa_bot, status) == PersonStatus.STOPPED
    await karim.send("Start")
    back = FR._("Welcome back: you will receive the council's messages again.")
    await karim.wait_for(lambda m: text(m) == back)
    assert await in_transaction(wa_bot, status) == PersonStatus.ACTIVE


async def test_an_invitation_after_24_hours_goes_as_a_template_then_in_full(
    wa_bot: CoupDePouce,
    whatsapp: CloudApiEmulator,
    emulator: BotApiEmulator,
    council: Council,
) -> None:
    amina, karim = whatsapp.user(AMINA, name="Amina"), whatsapp.user(KARIM, name="Karim")
    await join(amina)
    await join(karim)
    await close_window(wa_bot, amina)  # Karim wrote a minute ago; Amina a day ago

    oumar = await organiser_of(wa_bot, emulator, council, 70_001)
    await send_meeting(oumar)

    # Karim is inside the window: the invitation itself, buttons and calendar file.
    invitation = await karim.wait_for(lambda m: "Conseil citoyen de décembre" in text(m))
    assert not invitation.is_template
    assert invitation.buttons == [
        "✅ " + FR._("I'm coming"),
        "🤔 " + FR._("Maybe"),
        "❌ Je ne peux pas ve…",  # cut to 20 characters, whole in the text
    ]
    assert "• ❌ " + FR._("I can't come") in text(invitation)
    header = invitation.body["interactive"]["header"]
    assert header["type"] == "document" and header["document"]["filename"].endswith(".ics")
    assert whatsapp.media[header["document"]["id"]][2].startswith(b"BEGIN:VCALENDAR")
    # Amina is outside: an approved template says what it is about, in her language.
    template = await amina.wait_for(lambda m: m.is_template)
    assert template.template == "coupdepouce_meeting"
    assert "Conseil citoyen de décembre" in text(template)
    assert "Conseil citoyen Quartier Nord" in text(template)
    assert not any(
        "Conseil citoyen de décembre" in text(m) for m in amina.inbox if not m.is_template
    )

    # She taps the template's button: the full invitation follows, and she answers it.
    await amina.tap_template()
    full = await amina.wait_for(
        lambda m: not m.is_template and "Conseil citoyen de décembre" in text(m)
    )
    await choose(amina, "✅ " + FR._("I'm coming"), full)
    guests = await amina.wait_for(lambda m: FR._("Just me") in labels(m))  # four choices: a list
    assert guests.rows == [FR._("Just me"), "+1", "+2", "+3"]

    async def rsvp(session: AsyncSession) -> Rsvp | None:
        return await session.scalar(
            select(MeetingInvite.rsvp)
            .join(Identity, Identity.person_id == MeetingInvite.person_id)
            .where(Identity.external_id == AMINA)
        )

    assert await in_transaction(wa_bot, rsvp) == Rsvp.COMING

    async def rows(session: AsyncSession) -> list[OutboxMessage]:
        return list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "whatsapp"))
        )

    sent = await in_transaction(wa_bot, rows)
    templates = [row for row in sent if row.template is not None]
    assert [row.chat_id for row in templates] == [AMINA]  # one template, billed once
    assert templates[0].opened_at is not None  # and its full text went out once
    # Tapping the template again brings nothing twice.
    before = len(amina.inbox)
    await amina.tap_template(message=template)
    nothing = await next_after(amina, before)
    assert FR._("You are up to date: nothing new is waiting.") == text(nothing)


async def test_forged_signature_replayed_message_and_garbage_change_nothing(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    amina = whatsapp.user(AMINA, name="Amina")
    await amina.send(join_text(FR, "quartier-nord"))
    await amina.next_message()
    body = amina.last_posted
    assert body is not None

    # Another start, signed with the wrong secret, or not signed: refused, nothing sent.
    forged = body.replace(b"quartier-nord", b"quartier-sud")
    assert await whatsapp.post(forged, whatsapp.sign(body)) == 403
    assert await whatsapp.post(forged, None) == 401
    assert await whatsapp.post(b"not json", whatsapp.sign(b"not json")) == 400
    # The same message delivered again (Meta retries): processed once.
    assert await whatsapp.post(body, whatsapp.sign(body)) == 200
    assert await whatsapp.post(body, whatsapp.sign(body)) == 200
    await whatsapp.flush()
    assert len(amina.inbox) == 1
    # Unknown shapes and other fields are answered 200 and ignored.
    other = json.dumps({"object": "page", "entry": []}).encode()
    assert await whatsapp.post(other, whatsapp.sign(other)) == 200
    assert await count_rows(wa_bot, Conversation) == 1


async def test_meta_verification_handshake(wa_bot: CoupDePouce) -> None:
    url = f"http://127.0.0.1:{wa_bot.port}/whatsapp"
    async with aiohttp.ClientSession() as client:
        query = {
            "hub.mode": "subscribe",
            "hub.verify_token": WA_VERIFY_TOKEN,
            "hub.challenge": "42",
        }
        async with client.get(url, params=query) as response:
            assert (response.status, await response.text()) == (200, "42")
        query["hub.verify_token"] = "guess"
        async with client.get(url, params=query) as response:
            assert response.status == 403


async def test_stickers_voice_notes_reactions_and_locations_get_a_kind_answer(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    karim = whatsapp.user(KARIM, name="Karim")
    await join(karim)
    for send in (karim.send_sticker, karim.send_voice, karim.send_unsupported, karim.send_image):
        before = len(karim.inbox)
        assert await send() == 200
        answer = await next_after(karim, before)
        assert text(answer) == FR._(
            "I can only read text and button taps. Send /help to see what I can do."
        )
    before = len(karim.inbox)
    assert await karim.send_reaction("👍") == 200  # a reaction needs no answer
    assert await karim.send_location(48.85, 2.35) == 200
    await karim.wait_for(lambda m: len(karim.inbox) > before)
    await whatsapp.flush()
    assert len(karim.inbox) == before + 1  # the location was answered, the reaction was not


async def staff_on_whatsapp(
    app: CoupDePouce, whatsapp: CloudApiEmulator, council: Council, wa_id: str, role: Role
) -> FakeWhatsAppUser:
    """A council's organiser or coordinator who talks to the bot on WhatsApp, in English."""

    async def grant(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        await people.grant_role(session, stored, "whatsapp", wa_id, role)

    await in_transaction(app, grant)
    user = whatsapp.user(wa_id, name="Oumar")
    await join(user, EN)
    return user


async def test_a_consultation_written_and_answered_on_whatsapp_through_lists(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    oumar = await staff_on_whatsapp(wa_bot, whatsapp, council, ORGANISER, Role.ORGANISER)
    amina, karim = whatsapp.user(AMINA, name="Amina"), whatsapp.user(KARIM, name="Karim")
    await join(amina)
    await join(karim)

    await oumar.send("/consult")
    await oumar.wait_for(lambda m: text(m).startswith("A quick consultation"))
    await oumar.send("Le square Pasteur")
    await choose(oumar, "One choice", await oumar.wait_for(lambda m: "One choice" in labels(m)))
    await oumar.wait_for(lambda m: text(m).startswith("Write question 1."))
    await oumar.send("Que faire du square ?")
    await oumar.wait_for(lambda m: text(m).startswith("Write the choices"))
    await oumar.send("Un jardin partagé\nUne aire de jeux\nDes bancs")
    second = await oumar.wait_for(lambda m: text(m).startswith("Question 2:"))
    await choose(oumar, "A scale from 1 to 5", second)
    await oumar.wait_for(lambda m: text(m).startswith("Write question 2."))
    await oumar.send("Vous sentez-vous en sécurité le soir ?")
    third = await oumar.wait_for(lambda m: text(m).startswith("Question 3:"))
    await choose(oumar, "Several choices", third)
    await oumar.wait_for(lambda m: text(m).startswith("Write question 3."))
    await oumar.send("Quand venez-vous au square ?")
    await oumar.wait_for(lambda m: text(m).startswith("Write the choices") and m is not third)
    await oumar.send("Le matin\nL'après-midi\nLe soir")
    fourth = await oumar.wait_for(lambda m: text(m).startswith("Question 4:"))
    await choose(oumar, "A short text", fourth)
    await oumar.wait_for(lambda m: text(m).startswith("Write question 4."))
    await oumar.send("Une idée pour le square ?")
    more = await oumar.wait_for(lambda m: text(m).startswith("Question 5:"))
    await choose(oumar, "✅ No more questions", more)
    await choose(oumar, "Every member", await oumar.wait_for(lambda m: "Every member" in labels(m)))
    anonymity = await oumar.wait_for(lambda m: text(m).startswith("Anonymous answers"))
    await choose(oumar, "Anonymous (recommended)", anonymity)
    visible = await oumar.wait_for(lambda m: text(m).startswith("May residents see"))
    await choose(oumar, "No, only after closing (recommended)", visible)
    opens = await oumar.wait_for(lambda m: text(m).startswith("When does it open?"))
    await choose(oumar, "Now", opens)
    await choose(oumar, "In a week", await oumar.wait_for(lambda m: "In a week" in labels(m)))
    preview = await oumar.wait_for(lambda m: text(m).startswith("Preview"))
    assert text(preview).startswith("Preview: this consultation will go to 3 residents.")
    await choose(oumar, "Send", preview)
    await oumar.wait_for(lambda m: text(m).startswith("On its way"))

    for person, choice, scale in ((amina, "Un jardin partagé", "4"), (karim, "Des bancs", "2")):
        invitation = await person.wait_for(lambda m: "Le square Pasteur" in text(m))
        await choose(person, "✏️ " + FR._("Answer"), invitation)
        first = await person.wait_for(lambda m: text(m).startswith("1/4 · "))
        assert first.type == "interactive" and choice in labels(first)
        await choose(person, choice, first)
        scale_question = await person.wait_for(lambda m: text(m).startswith("2/4 · "))
        assert len(scale_question.rows) > 3  # five values and Skip/Back: a list
        await choose(person, scale, scale_question)
        several = await person.wait_for(lambda m: text(m).startswith("3/4 · "))
        await choose(person, "Le matin", several)
        ticked = await person.wait_for(lambda m: "✅ Le matin" in labels(m))
        await choose(person, "Le soir", ticked)
        ticked = await person.wait_for(lambda m: "✅ Le soir" in labels(m))
        await choose(person, "✅ " + FR._("Done"), ticked)
        await person.wait_for(lambda m: text(m).startswith("4/4 · "))
        await person.send(f"Des fleurs, dit {person.name}")
        where = await person.wait_for(lambda m: "Les Tilleuls" in labels(m))
        await choose(person, "Les Tilleuls", where)
        await person.wait_for(lambda m: "Vos réponses sont enregistrées" in text(m))

    async def ballots(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(Ballot)) or 0)

    assert await in_transaction(wa_bot, ballots) == 2
    await oumar.send("/results")
    await oumar.wait_for(lambda m: "Le square Pasteur" in text(m) and bool(labels(m)))

    # At closing: the figures, a chart per question as an image, and the CSV as a document.
    closing = utcnow() + timedelta(days=7, minutes=1)
    assert await wa_bot.scheduler.tick(CLOSE_CONSULTATIONS, closing) == 1
    await oumar.wait_for(lambda _m: len([m for m in oumar.inbox if m.type == "image"]) == 3)
    images = [m for m in oumar.inbox if m.type == "image"]
    assert all(whatsapp.media[m.body["image"]["id"]][2].startswith(b"\x89PNG") for m in images)
    table = await oumar.wait_for(lambda m: (m.filename or "").endswith(".csv"))
    filename, mime_type, content = whatsapp.media[table.body["document"]["id"]]
    assert (filename, mime_type) == (table.filename, "text/plain")  # WhatsApp takes no text/csv
    table_text = content.decode("utf-8-sig")
    assert "Un jardin partagé" in table_text and "Des fleurs, dit Karim" in table_text
    assert "Le soir" in table_text
    heard = await amina.wait_for(lambda m: text(m).startswith("📊 "))
    assert "Un jardin partagé" in text(heard)  # two in Les Tilleuls: too few to show apart


async def announce(
    app: CoupDePouce, council: Council, text: str, report_to: FakeUser | None = None
) -> int:
    """A message to every member of the council, its progress reported on Telegram."""

    async def start(session: AsyncSession) -> int:
        stored = await session.get_one(Council, council.id)
        broadcast = await broadcasts.start_broadcast(
            session,
            council=stored,
            kind="announcement",
            audience=broadcasts.members(stored),
            render=announcements.message_for_residents(stored, text),
            report_to=(
                broadcasts.ReportTo("telegram", str(report_to.id), "en") if report_to else None
            ),
        )
        return broadcast.id

    broadcast_id: int = await in_transaction(app, start)
    app.dispatcher.wake()
    return broadcast_id


async def seed_whatsapp(
    app: CoupDePouce,
    whatsapp: CloudApiEmulator,
    council: Council,
    people: dict[str, tuple[str, float | None]],
) -> None:
    """WhatsApp residents: number → (language, hours since they last wrote, None: never)."""
    now = utcnow()

    async def add(session: AsyncSession) -> None:
        stored = await session.get_one(Council, council.id)
        numbers = list(people)
        await add_whatsapp_residents(
            session,
            stored,
            numbers,
            [people[n][0] for n in numbers],
            [
                None if people[n][1] is None else now - timedelta(hours=people[n][1] or 0)
                for n in numbers
            ],
        )

    await in_transaction(app, add)
    for number, (_language, hours) in people.items():
        user = whatsapp.user(number)
        user.last_inbound_at = None if hours is None else time.time() - hours * 3600


async def test_a_broadcast_counts_its_templates_and_reports_one_whatsapp_refused(
    start_wa: StartWhatsApp,
    whatsapp: CloudApiEmulator,
    emulator: BotApiEmulator,
    council: Council,
) -> None:
    app = await start_wa(whatsapp_template_price=0.05)
    nadia = await coordinator_of(app, emulator, council, 70_002)
    inside, outside, arabic = "33600000001", "33600000002", "33600000003"
    await seed_whatsapp(
        app, whatsapp, council, {inside: ("fr", 1), outside: ("fr", 30), arabic: ("ar", None)}
    )
    whatsapp.set_template_status("coupdepouce_news", "ar", "PAUSED")

    await announce(app, council, "Fête de quartier samedi !\nVenez nombreux.", report_to=nadia)
    report = await nadia.wait_for(lambda m: text_of(m).startswith("Done:"), timeout=10)
    assert text_of(report) == (
        "Done: sent 3 of 4. — 1 as a WhatsApp template (about €0.05) — 1 not sent: WhatsApp "
        "has not approved the template “coupdepouce_news (ar)” (or paused it)"
    )
    full = whatsapp.user(inside).inbox[-1]
    assert not full.is_template and "Fête de quartier samedi !\nVenez nombreux." in text(full)
    news = whatsapp.user(outside).inbox[-1]
    assert news.template == "coupdepouce_news" and "Fête de quartier samedi !" in text(news)
    assert whatsapp.user(arabic).inbox == []


async def test_meta_error_codes_wait_retry_fall_back_or_mark_unreachable(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    rate, pair, gone, stale = "33600000011", "33600000012", "33600000013", "33600000014"
    await seed_whatsapp(
        wa_bot, whatsapp, council, {number: ("fr", 1) for number in (rate, pair, gone, stale)}
    )
    whatsapp.fail(130429, to=rate)  # the whole number is over its rate: wait, send again
    whatsapp.fail(131056, to=pair)  # too many to this person: wait for them alone
    whatsapp.undeliverable(gone)  # accepted, then failed by receipt: 131026
    whatsapp.user(stale).last_inbound_at = time.time() - 30 * 3600  # Meta's window is closed

    broadcast_id = await announce(wa_bot, council, "Réunion publique jeudi.")

    for number in (rate, pair):
        user = whatsapp.user(number)
        delivered = await user.wait_for(lambda m: "Réunion publique jeudi." in text(m), timeout=15)
        assert not delivered.is_template
        assert len([m for m in user.inbox if "Réunion publique" in text(m)]) == 1
    # We thought the window open; Meta said 131047 by receipt: the template went instead.
    fallback = await whatsapp.user(stale).wait_for(lambda m: m.is_template, timeout=10)
    assert fallback.template == "coupdepouce_news"

    async def state(session: AsyncSession) -> tuple[PersonStatus, list[str]]:
        person = await session.scalar(
            select(Person).join(Identity).where(Identity.external_id == gone)
        )
        assert person is not None
        rows = await session.scalars(
            select(OutboxMessage.last_error).where(OutboxMessage.broadcast_id == broadcast_id)
        )
        return person.status, sorted(str(error) for error in rows)

    async def gone_is_unreachable() -> bool:
        status, _errors = await in_transaction(wa_bot, state)
        return bool(status == PersonStatus.UNREACHABLE)

    for _ in range(50):
        if await gone_is_unreachable():
            break
        await asyncio.sleep(0.1)
    status, errors = await in_transaction(wa_bot, state)
    assert status == PersonStatus.UNREACHABLE
    assert errors.count("unreachable") == 1


async def test_one_person_on_telegram_and_whatsapp_gets_one_copy_where_they_chose(
    wa_bot: CoupDePouce,
    whatsapp: CloudApiEmulator,
    emulator: BotApiEmulator,
    council: Council,
) -> None:
    karim_tg = emulator.resident(71_001, first_name="Karim", language_code="fr")
    await onboard(karim_tg)
    karim_tg.send("/link")
    code_message = await karim_tg.wait_for(lambda m: text_of(m).startswith("/link "))
    code = text_of(code_message).removeprefix("/link ")
    assert len(code) == 8

    karim_wa = whatsapp.user(KARIM, name="Karim")
    for wrong in ("AAAA2222", "BBBB3333"):
        await karim_wa.send(f"/link {wrong}")
    refused = await karim_wa.wait_for(lambda m: "/link" in text(m))
    assert "ne marche pas" in text(refused)
    await karim_wa.send(f"/link {code.lower()}")  # typed in lower case: the same code
    where = await karim_wa.wait_for(
        lambda m: text(m) == FR._("Where should the council's messages reach you?")
    )
    assert labels(where) == ["✅ Telegram", "WhatsApp"]
    await choose(karim_wa, "WhatsApp", where)
    done = FR._("Done: the council's messages will reach you on {app}.").format(app="WhatsApp")
    await karim_wa.wait_for(lambda m: text(m) == done)

    async def karims(session: AsyncSession) -> list[tuple[str, bool, int]]:
        rows = await session.execute(
            select(Identity.channel, Identity.preferred, Identity.person_id).order_by(Identity.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    identities = await in_transaction(wa_bot, karims)
    assert [(channel, preferred) for channel, preferred, _ in identities] == [
        ("telegram", False),
        ("whatsapp", True),
    ]
    assert len({person for _, _, person in identities}) == 1  # one person, two apps
    # The code works once.
    stranger = whatsapp.user("33699999999", name="Eve")
    await stranger.send(f"/link {code}")
    await stranger.wait_for(lambda m: "ne marche pas" in text(m))

    await announce(wa_bot, council, "Vide-grenier dimanche.")
    await karim_wa.wait_for(lambda m: "Vide-grenier dimanche." in text(m))
    await whatsapp.flush()
    assert len([m for m in karim_wa.inbox if "Vide-grenier" in text(m)]) == 1
    assert not any("Vide-grenier" in text_of(m) for m in karim_tg.inbox)


async def test_wrong_codes_stop_after_five_and_an_existing_member_is_not_merged(
    wa_bot: CoupDePouce,
    whatsapp: CloudApiEmulator,
    emulator: BotApiEmulator,
    council: Council,
) -> None:
    sam_tg = emulator.resident(71_002, first_name="Sam", language_code="fr")
    await onboard(sam_tg)
    sam_tg.send("/link")
    code = text_of(await sam_tg.wait_for(lambda m: text_of(m).startswith("/link "))).split()[1]

    amina = whatsapp.user(AMINA, name="Amina")
    await join(amina)  # a member of her own
    await amina.send(f"/link {code}")
    await amina.wait_for(lambda m: "/forget" in text(m) and "lié" in text(m))

    guesser = whatsapp.user("33688888888", name="Guess")
    for attempt in range(5):
        await guesser.send(f"/link ZZZZ{attempt}XYZ")
    await guesser.send(f"/link {code}")  # the right code, but too late
    await guesser.wait_for(
        lambda m: text(m) == FR._("Too many wrong codes. Please try again in an hour.")
    )
    assert await count_rows(wa_bot, Identity) == 2  # Sam on Telegram, Amina on WhatsApp


async def test_a_long_list_pages_with_more_and_an_old_button_is_answered_as_expired(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    oumar = await staff_on_whatsapp(wa_bot, whatsapp, council, ORGANISER, Role.ORGANISER)
    await oumar.send("/meeting")
    await oumar.wait_for(lambda m: text(m).startswith("A new meeting"))
    await oumar.send("Atelier vélo")
    await oumar.wait_for(lambda m: text(m).startswith("What is it about?"))
    await oumar.send("Réparer ensemble.")
    await oumar.wait_for(lambda m: text(m).startswith("Where?"))
    await oumar.send("Local associatif")
    where = await oumar.wait_for(lambda m: text(m).startswith("To show it on a map"))
    await choose(oumar, "Skip", where)
    days = await oumar.wait_for(lambda m: text(m).startswith("Which day?"))
    assert len(days.rows) == 10 and days.rows[-1] == "More…"  # nine days and "More…"
    await oumar.tap("More…", days)
    second = await oumar.wait_for(lambda m: text(m).startswith("Which day?") and m is not days)
    assert second.rows[0] not in days.rows and second.rows[-1] == "More…"
    await oumar.tap(second.rows[0], second)
    await oumar.wait_for(lambda m: text(m).startswith("At what time"))

    # The first page's rows belong to a question already answered.
    before = len(oumar.inbox)
    await oumar.tap(days.rows[0], days)
    earlier = EN._("That button belongs to an earlier question. Here is where we are:")
    assert text(await next_after(oumar, before)) == earlier
    assert text(await next_after(oumar, before + 1)).startswith("At what time")
    # A forged "More…" of someone else's menu is refused.
    await oumar.tap_id("wa-more:99999:1", days, kind="list_reply")
    assert text(await next_after(oumar, before + 2)) == EN._("This button has expired.")


async def test_a_reply_longer_than_whatsapp_allows_is_split_between_lines(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    karim = whatsapp.user(KARIM, name="Karim")
    await join(karim)
    long_line = "Une phrase assez longue pour remplir le message. " * 100  # 5,000 characters
    await announce(wa_bot, council, long_line)
    await next_after(karim, 4)  # the welcome, the menu, then the message in two parts
    await whatsapp.flush()
    bodies = [text(m) for m in karim.inbox[3:]]
    assert all(len(body) <= 4096 for body in bodies) and len(bodies) == 2
    assert "".join(bodies).replace("\n", "").count("Une phrase") == 100


async def test_a_preview_says_how_many_templates_it_will_use_and_their_cost(
    start_wa: StartWhatsApp,
    whatsapp: CloudApiEmulator,
    emulator: BotApiEmulator,
    council: Council,
) -> None:
    app = await start_wa(whatsapp_template_price=0.0509, whatsapp_price_currency="EUR")
    nadia = await coordinator_of(app, emulator, council, 70_003)
    await seed_whatsapp(
        app,
        whatsapp,
        council,
        {"33600000021": ("fr", 2), "33600000022": ("fr", 40), "33600000023": ("ar", None)},
    )
    nadia.send("/announce")
    await nadia.next_message()
    nadia.send("Réunion publique samedi.")
    preview = await nadia.next_message()
    lines = text_of(preview).splitlines()
    assert lines[0] == "Preview: this message will go to 4 residents."
    assert lines[1] == "Of whom: 2 as WhatsApp templates (about €0.10)."
    nadia.tap("Send", preview)
    done = await nadia.wait_for(lambda m: text_of(m).startswith("Done"), timeout=10)
    assert text_of(done) == "Done: sent 4 of 4. — 2 as WhatsApp templates (about €0.10)"


async def join_directory(sam: FakeWhatsAppUser) -> SentMessage:
    """Cooking, free in the evenings, in La Gare, direct contact: the profile shown."""
    await sam.send("directory")  # a typed word for /talents
    categories = await sam.wait_for(lambda m: "Home and repairs" in labels(m))
    await choose(sam, "Home and repairs", categories)
    skills = await sam.wait_for(lambda m: "Cooking" in labels(m) and m is not categories)
    await choose(sam, "Cooking", skills)
    # A toggle cannot redraw the message on WhatsApp: the list comes again, ticked.
    ticked = await sam.wait_for(lambda m: "✅ Cooking" in labels(m))
    await choose(sam, "◀ Back", ticked)
    done = await sam.wait_for(lambda m: "✅ Done" in labels(m) and m is not categories)
    await choose(sam, "✅ Done", done)
    await sam.wait_for(lambda m: text(m).startswith("Anything else"))
    await sam.send("I can lend a drill")
    free = await sam.wait_for(lambda m: text(m).startswith("When are you"))
    await choose(sam, "Evenings", free)
    free = await sam.wait_for(lambda m: "✅ Evenings" in labels(m))
    await choose(sam, "✅ Done", free)
    await choose(sam, "La Gare", await sam.wait_for(lambda m: "Les Tilleuls" in labels(m)))
    contact = await sam.wait_for(lambda m: "Yes, directly" in labels(m))
    await choose(sam, "Yes, directly", contact)
    return await sam.wait_for(lambda m: text(m).startswith("Your profile"))


async def test_a_resident_joins_the_directory_answers_a_call_and_sees_and_erases_their_data(
    wa_bot: CoupDePouce,
    whatsapp: CloudApiEmulator,
    emulator: BotApiEmulator,
    council: Council,
) -> None:
    whatsapp.mark_read = True
    sam = whatsapp.user(SALMA, name="Sam")
    await join(sam, EN)
    shown = await join_directory(sam)
    assert "Skills: Cooking" in text(shown) and "Free: Evenings" in text(shown)

    nadia = await coordinator_of(wa_bot, emulator, council, 70_004)
    await send_cooking_call(nadia)
    nadia.tap("Send", await nadia.wait_for(lambda m: text_of(m).startswith("Preview")))
    call = await sam.wait_for(lambda m: "Repas solidaire" in text(m))
    assert call.buttons == ["🙋 I can help", "Maybe, tell me more", "Not this time"]
    await choose(sam, "🙋 I can help", call)
    await sam.wait_for(lambda m: text(m).startswith("Thank you! Add a short message"))
    await sam.send("J'apporte une grande marmite")
    await sam.wait_for(lambda m: text(m) == "Sent to the coordinator.")
    await nadia.wait_for(lambda m: "J'apporte une grande marmite" in text_of(m))

    # Receipts come back by webhook: the call's row knows it was read.
    async def receipt(session: AsyncSession) -> str | None:
        return await session.scalar(
            select(OutboxMessage.receipt).where(
                OutboxMessage.chat_id == SALMA, OutboxMessage.broadcast_id.is_not(None)
            )
        )

    for _ in range(50):
        if await in_transaction(wa_bot, receipt) == "read":
            break
        await asyncio.sleep(0.05)
    assert await in_transaction(wa_bot, receipt) == "read"

    await sam.send("/mydata")
    document = await sam.wait_for(lambda m: (m.filename or "") == "mydata.json")
    _name, mime_type, content = whatsapp.media[document.body["document"]["id"]]
    kept = json.loads(content)
    assert mime_type == "text/plain"  # WhatsApp takes no JSON: the name tells the phone
    assert kept["accounts"][0]["channel"] == "whatsapp" and kept["accounts"][0]["preferred"]

    await sam.send("forget")  # a typed word for /forget
    confirm = await sam.wait_for(lambda m: text(m).startswith("Erase everything"))
    await choose(sam, "Yes, erase everything", confirm)
    await sam.wait_for(lambda m: text(m).startswith("Done: everything about you has been erased."))
    assert await identity(wa_bot, SALMA) is None
    assert await count_rows(wa_bot, Person) == 1  # Nadia only


async def test_a_coordinator_on_whatsapp_announces_and_reads_the_first_and_last_report(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    nadia = await staff_on_whatsapp(wa_bot, whatsapp, council, ORGANISER, Role.COORDINATOR)
    await seed_whatsapp(
        wa_bot, whatsapp, council, {f"336000001{n:02d}": ("fr", 1) for n in range(12)}
    )
    await nadia.send("/announce")
    await nadia.wait_for(lambda m: text(m).startswith("Write your message"))
    await nadia.send("Nettoyage du parc dimanche, 10 h.")
    preview = await nadia.wait_for(lambda m: text(m).startswith("Preview"))
    await choose(nadia, "Send", preview)
    done = await nadia.wait_for(lambda m: text(m).startswith("Done: sent 13 of 13."), timeout=20)
    assert done is not None
    # WhatsApp cannot edit a message: a few reports, not one every three seconds.
    reports = [m for m in nadia.inbox if text(m).startswith(("Sent ", "Done:"))]
    assert 1 <= len(reports) <= 2


async def test_receipts_never_go_back_and_early_ones_are_told_apart(
    wa_bot: CoupDePouce,
) -> None:
    async def run(session: AsyncSession) -> tuple[set[str], set[str], str | None]:
        message = await outbox.enqueue_one(
            session, channel="whatsapp", chat_id=AMINA, payload={"text": "x"}, priority=5
        )
        message.provider_id = "wamid.X"
        await session.flush()
        early = await outbox.note_receipts(session, {"wamid.X": "read", "wamid.Y": "delivered"})
        late = await outbox.note_receipts(session, {"wamid.X": "delivered"})
        await session.refresh(message)
        return early, late, message.receipt

    early, late, receipt = await in_transaction(wa_bot, run)
    assert early == {"wamid.Y"}  # no message has that id yet: kept for a later try
    assert late == set() and receipt == "read"  # a late "delivered" does not undo "read"


async def test_messages_arriving_together_make_one_unit_answered_once_kept(
    wa_bot: CoupDePouce, whatsapp: CloudApiEmulator, council: Council
) -> None:
    people = [whatsapp.user(f"3361234{n:04d}", name=f"R{n}") for n in range(30)]
    with tally() as counts:
        statuses = await asyncio.gather(*(person.send("aide") for person in people))
        assert statuses == [200] * len(people)
        for person in people:
            assert FR._("Here is what you can do:") in text(await person.next_message())
    units = counts.commits["whatsapp-unit"]
    assert 1 <= units < len(people) / 3, counts.commits
