"""One person counts once: invitation codes printed by the CLI and redeemed in the web chat,
a coordinator's approval in the dashboard, a link from Telegram, and consultations and calls
that leave unverified web chat members' answers aside (or take them, when told to)."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.councils import create as create_council
from flows.verification import service as verification
from flows.verification.flow import HOW_TO_COUNT
from flows.verification.service import Redeemed
from storage import db
from storage.models import (
    Ballot,
    Call,
    CallAnswer,
    Consultation,
    Council,
    Identity,
    InviteCode,
    Participant,
    Person,
    Role,
)
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator, FakeUser
from tests.helpers import EN, FR, onboard, run_cli
from tests.test_broadcast import FAST
from tests.test_calls import answers
from tests.test_consultations import close_now, organiser_of, seed, text_of, write
from tests.test_dashboard import Tab, hidden, link_for
from tests.test_demo import Chat, texts
from tests.test_talents import coordinator_of

PUBLIC_URL = "https://coupdepouce.example.org"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CODE = re.compile(rb"\(([A-Z0-9]{4}-[A-Z0-9]{4})\) Tj")


# --- helpers -------------------------------------------------------------------------------


@asynccontextmanager
async def web_chat(app: CoupDePouce, language: str = "fr") -> AsyncIterator[Chat]:
    """A browser tab on the chat page (its own cookie: its own person)."""
    base = f"http://127.0.0.1:{app.port}"
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": language}
    ) as client:
        async with client.get(f"{base}/") as page:
            assert page.status == 200
        async with client.ws_connect(f"{base}/chat/ws") as socket:
            yield Chat(socket)


async def join(chat: Chat, start: str = "/start quartier-nord") -> list[dict[str, Any]]:
    """Join the council from the web chat and consent; the replies to the consent."""
    await chat.say(start)
    return await chat.tap(FR._("✅ Yes, I agree"))


async def codes_for(app: CoupDePouce, slug: str, count: int) -> list[str]:
    async def make(session: AsyncSession) -> list[str]:
        council = await session.scalar(select(Council).where(Council.slug == slug))
        assert council is not None
        return await verification.new_codes(session, council, count)

    made: list[str] = await in_transaction(app, make)
    return made


async def web_people(app: CoupDePouce) -> list[Person]:
    """The web chat persons, in the order they joined."""

    async def run(session: AsyncSession) -> list[Person]:
        return list(
            await session.scalars(
                select(Person).join(Identity).where(Identity.channel == "web").order_by(Person.id)
            )
        )

    found: list[Person] = await in_transaction(app, run)
    return found


async def invite_code(app: CoupDePouce, code: str) -> InviteCode:
    async def run(session: AsyncSession) -> InviteCode:
        return await session.get_one(InviteCode, verification.digest(code))

    found: InviteCode = await in_transaction(app, run)
    return found


def pdf_streams(pdf: bytes) -> bytes:
    """The PDF's content, its compressed streams inflated."""
    inflated = []
    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            inflated.append(zlib.decompress(stream[1]))
        except zlib.error:
            inflated.append(stream[1])
    return b"\n".join(inflated)


# --- codes: made, printed, redeemed ----------------------------------------------------------


async def test_codes_are_made_by_the_cli_printed_on_cards_and_one_joins_from_its_qr(
    bot: CoupDePouce, council: Council, database_url: str, tmp_path: Path
) -> None:
    flyers = tmp_path / "flyers.pdf"
    env = {"DATABASE_URL": database_url, "PUBLIC_URL": PUBLIC_URL}
    code, out, err = await run_cli(
        "invite", "quartier-nord", "--codes", "10", "--pdf", str(flyers), env=env
    )
    assert code == 0, err
    assert out.strip() == f"10 single-use codes for quartier-nord written to {flyers}"

    pdf = flyers.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type /Page\b", pdf)) == 2  # eight cards a page
    assert len(re.findall(rb"/Subtype /Image", pdf)) == 10  # one QR code per card
    printed = [found.decode() for found in CODE.findall(pdf_streams(pdf))]
    assert len(set(printed)) == 10
    assert not any(shown in out for shown in printed)  # the codes are on paper only

    async def stored(session: AsyncSession) -> list[InviteCode]:
        return list(await session.scalars(select(InviteCode)))

    kept = await in_transaction(bot, stored)
    assert {row.code_hash for row in kept} == {verification.digest(c) for c in printed}
    assert all(row.council_id == council.id and row.used_at is None for row in kept)

    # The card's QR code opens the chat with "/start quartier-nord CODE": a member who counts.
    async with web_chat(bot) as chat:
        welcome = await join(chat, f"/start quartier-nord {printed[3]}")
    assert FR._(
        "Thank you: your code is accepted. You are a verified member, and your answers count."
    ) in texts(welcome)
    [member] = await web_people(bot)
    assert member.verified_at is not None and member.verified_by == "code"
    used = await invite_code(bot, printed[3])
    assert used.used_at is not None and used.person_id == member.id


async def test_the_web_chat_address_and_its_qr_code(
    council: Council, database_url: str, tmp_path: Path
) -> None:
    poster = tmp_path / "web.png"
    env = {"DATABASE_URL": database_url, "PUBLIC_URL": PUBLIC_URL}
    code, out, err = await run_cli("invite", "quartier-nord", "--web", "--qr", str(poster), env=env)
    assert code == 0, err
    assert out.splitlines()[0] == f"{PUBLIC_URL}/?start=quartier-nord"
    assert poster.read_bytes().startswith(PNG_SIGNATURE)
    for args, expected in (
        (["--codes", "5"], "--codes N and --pdf FILE go together"),
        (["--codes", "0", "--pdf", str(tmp_path / "x.pdf")], "--codes takes 1 to"),
        (["--web", "--whatsapp"], "choose one of --web and --whatsapp"),
    ):
        code, _out, err = await run_cli("invite", "quartier-nord", *args, env=env)
        assert code == 2 and expected in err and "Traceback" not in err
    code, _out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--codes",
        "3",
        "--pdf",
        str(tmp_path / "x.pdf"),
        env={"DATABASE_URL": database_url, "PUBLIC_URL": ""},
    )
    assert code == 2 and "PUBLIC_URL" in err
    assert not (tmp_path / "x.pdf").exists()


async def test_codes_are_redeemed_once_and_every_other_case_gets_a_kind_answer(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    first, second, spare = await codes_for(bot, "quartier-nord", 3)

    async def elsewhere(session: AsyncSession) -> list[str]:
        other = await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")
        return await verification.new_codes(session, other, 1)

    [foreign] = await in_transaction(bot, elsewhere)
    invalid = FR._(
        "This code does not work: it may be mistyped, used already, or from another council. "
        "Nothing has changed. Check it, or ask your council for another one."
    )
    accepted = FR._(
        "Thank you: your code is accepted. You are a verified member, and your answers count."
    )
    async with web_chat(bot) as amel, web_chat(bot) as bruno:
        # Typed the way people type: lower case, a space, no dash.
        welcome = await join(amel, f"/start quartier-nord {first[:4].lower()} {first[4:]}")
        assert accepted in texts(welcome)
        await join(bruno)
        # Someone else's code, used already: refused, nothing changes.
        assert invalid in texts(await bruno.say(f"/verify {first}"))
        # A forged one, another council's one.
        assert invalid in texts(await bruno.say("/verify ZZZZ-ZZZZ"))
        assert invalid in texts(await bruno.say(f"/verify {foreign}"))
        amel_person, bruno_person = await web_people(bot)
        assert bruno_person.verified_at is None
        assert (await invite_code(bot, first)).person_id == amel_person.id
        assert (await invite_code(bot, foreign)).used_at is None
        # Bad input: far too long, or nothing at all (then the code is asked for).
        malformed = FR._(
            "This does not look like a code: it has 8 letters and digits, like ABCD-EFGH. "
            "Send /verify followed by the code on your card."
        )
        assert malformed in texts(await bruno.say("/verify " + "A" * 10_000))
        asked = await bruno.say("/verify")
        assert FR._(
            "Type the code printed on your card: 8 letters and digits, like ABCD-EFGH."
        ) in texts(asked)
        assert accepted in texts(await bruno.say(f"  {second.lower()}  "))
        # Verified already: the spare code is kept for a neighbour.
        already = await bruno.say(f"/verify {spare}")
        assert FR._(
            "You are already a verified member: no need for a code. "
            "It was not used, so you can pass it on to a neighbour."
        ) in texts(already)
    assert (await invite_code(bot, spare)).used_at is None
    _amel, bruno_person = await web_people(bot)
    assert bruno_person.verified_by == "code"

    # On Telegram one counts already: the code stays unused.
    chantal = emulator.resident(71_001, language_code="en")
    await onboard(chantal, EN)
    chantal.send(f"/verify {spare}")
    answer = await chantal.wait_for(lambda m: "no need for a code" in text_of(m))
    assert text_of(answer) == EN._(
        "Your Telegram or WhatsApp account already makes your answers count: no need for a "
        "code. It was not used, so you can pass it on to a neighbour."
    )
    assert (await invite_code(bot, spare)).used_at is None


async def test_wrong_codes_are_stopped_after_a_few_tries(
    bot: CoupDePouce, council: Council
) -> None:
    [kept] = await codes_for(bot, "quartier-nord", 1)
    async with web_chat(bot) as chat:
        await join(chat)
        for _ in range(verification.MAX_FAILURES):
            await chat.say("/verify ZZZZ-ZZZZ")
        stopped = await chat.say(f"/verify {kept}")
        assert texts(stopped) == FR._("Too many wrong codes. Please try again in an hour.")
    assert (await invite_code(bot, kept)).used_at is None


async def test_one_code_typed_by_several_people_at_once_verifies_one(
    bot: CoupDePouce, council: Council
) -> None:
    [shared] = await codes_for(bot, "quartier-nord", 1)
    for _ in range(5):
        async with web_chat(bot) as chat:
            await join(chat)
    people = await web_people(bot)

    async def redeem(person: Person) -> Redeemed:
        async with db.session_scope(bot.sessions) as session:
            mine = await session.get_one(Person, person.id)
            return await verification.redeem(session, mine, shared)

    outcomes = await asyncio.gather(*(redeem(person) for person in people))
    assert sorted(outcome.value for outcome in outcomes) == ["invalid"] * 4 + ["verified"]
    verified = [person for person in await web_people(bot) if person.verified_at is not None]
    assert len(verified) == 1
    assert (await invite_code(bot, shared)).person_id == verified[0].id


# --- the dashboard -------------------------------------------------------------------------


async def test_a_coordinator_verifies_a_member_in_the_dashboard(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    async def other_council(session: AsyncSession) -> None:
        await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")

    await in_transaction(bot, other_council)
    async with web_chat(bot) as chat:
        await chat.say("/start quartier-nord")
        await chat.tap(FR._("✅ Yes, I agree"))
    async with web_chat(bot) as chat:
        await join(chat, "/start quartier-sud")
    nord, sud = await web_people(bot)
    nadia = await coordinator_of(bot, emulator, council, 72_001)
    base = f"http://127.0.0.1:{bot.port}/dashboard"
    tab = Tab()
    try:
        await tab.sign_in(await link_for(nadia))
        status, page = await tab.get(base + "/quartier-nord/members")
        assert status == 200
        assert nord.first_name in page and EN._("Members to verify") in page
        assert f"/members/{sud.id}/verify" not in page  # another council's member
        # Only the web chat member: Nadia, on Telegram, counts already.
        assert page.count('/verify"') == 1
        csrf = hidden(page, "csrf")
        # Forms without the session's token, and another council's person, change nothing.
        assert await tab.post(base + f"/quartier-nord/members/{nord.id}/verify", {}) == 403
        assert (
            await tab.post(base + f"/quartier-nord/members/{sud.id}/verify", {"csrf": csrf}) == 404
        )
        assert (
            await tab.post(base + f"/quartier-sud/members/{sud.id}/verify", {"csrf": csrf}) == 403
        )
        assert [p.verified_at for p in await web_people(bot)] == [None, None]
        # The Verify button.
        assert (
            await tab.post(base + f"/quartier-nord/members/{nord.id}/verify", {"csrf": csrf})
            == 200  # after the redirect to the list
        )
        status, page = await tab.get(base + "/quartier-nord/members")
        assert EN._("Every member counts: nobody is waiting to be verified.") in page
        # Verified once: a second press finds nobody to verify.
        assert (
            await tab.post(base + f"/quartier-nord/members/{nord.id}/verify", {"csrf": csrf}) == 404
        )
    finally:
        await tab.close()
    nord, sud = await web_people(bot)
    assert nord.verified_by == "coordinator" and nord.verified_at is not None
    assert sud.verified_at is None


async def test_an_organiser_cannot_verify_members(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    async with web_chat(bot) as chat:
        await join(chat)
    [someone] = await web_people(bot)
    organiser = await coordinator_of(bot, emulator, council, 72_002, role=Role.ORGANISER)
    base = f"http://127.0.0.1:{bot.port}/dashboard/quartier-nord"
    tab = Tab()
    try:
        await tab.sign_in(await link_for(organiser))
        _, page = await tab.get(base + "/")
        assert (await tab.get(base + "/members"))[0] == 403
        csrf = hidden(page, "csrf")
        assert await tab.post(base + f"/members/{someone.id}/verify", {"csrf": csrf}) == 403
    finally:
        await tab.close()
    [someone] = await web_people(bot)
    assert someone.verified_at is None


# --- consultations ---------------------------------------------------------------------------


async def answer_on_the_web(chat: Chat, invitation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer the consultation of test_consultations.write (given the invitation shown)."""
    assert "Le square Pasteur" in texts(invitation)
    await chat.tap("✏️ " + FR._("Answer"))
    await chat.tap("Un jardin partagé")
    await chat.tap(FR.number(4))
    await chat.say("Un composteur")
    return await chat.tap("Les Tilleuls")


def results_to(oumar: FakeUser) -> Any:
    return oumar.wait_for(lambda m: text_of(m).startswith("📊 Results — Le square Pasteur"))


async def stored_results(app: CoupDePouce) -> dict[str, Any]:
    async def run(session: AsyncSession) -> dict[str, Any]:
        found = await session.scalar(select(Consultation))
        assert found is not None and found.results is not None
        return found.results

    results: dict[str, Any] = await in_transaction(app, run)
    return results


async def test_an_unverified_web_answer_is_left_aside_and_the_results_say_so(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    preview = await write(oumar)
    assert EN._(
        "Counted: only verified members' answers (a code from the council, Telegram or "
        "WhatsApp). Others are told how to get verified."
    ) in text_of(preview)
    oumar.tap("Send", preview)
    await oumar.wait_for(lambda m: text_of(m).startswith("On its way"))
    anna = emulator.resident(61_001)
    anna.tap("✏️ Answer", await anna.wait_for(lambda m: "✏️ Answer" in m.labels()))
    anna.tap("Des bancs", await anna.wait_for(lambda m: text_of(m).startswith("1/3 · ")))
    anna.tap("2", await anna.wait_for(lambda m: text_of(m).startswith("2/3 · ")))
    anna.tap("Skip ⏭", await anna.wait_for(lambda m: text_of(m).startswith("3/3 · ")))
    anna.tap("La Gare", await anna.wait_for(lambda m: text_of(m).startswith("One last thing")))
    await anna.wait_for(lambda m: text_of(m).startswith("Thank you! Your answers are saved."))

    async with web_chat(bot) as chat:
        invitation = await join(chat)  # asked on joining, as every member is
        done = await answer_on_the_web(chat, invitation)
    told = (
        FR._(
            "Your answers are recorded, but they will count once you are a verified member "
            "(so that each person counts once)."
        )
        + " "
        + FR._(HOW_TO_COUNT)
    )
    assert told in texts(done)

    # Live: the organiser's list says so.
    oumar.send("/results")
    card = await oumar.wait_for(lambda m: text_of(m).startswith("Le square Pasteur"))
    assert "1 unverified answer left aside." in text_of(card)

    assert await close_now(bot) == 1
    results = text_of(await results_to(oumar))
    assert "1 of 8 answered" in results
    assert "1 unverified answer left aside." in results
    assert "• Un jardin partagé: 0 (0%)" in results
    assert "• Des bancs: 1 (100%)" in results
    assert "Un composteur" not in results
    figures = await stored_results(bot)
    assert (figures["respondents"], figures["unverified_aside"]) == (1, 1)

    # Anonymity: what was left aside is not kept in a way that points to its author.
    async def after(session: AsyncSession) -> tuple[int, int, int]:
        ballots = int(await session.scalar(select(func.count()).select_from(Ballot)) or 0)
        unverified = int(
            await session.scalar(select(func.count()).where(Ballot.verified.is_(False))) or 0
        )
        took_part = int(await session.scalar(select(func.count()).select_from(Participant)) or 0)
        return ballots, unverified, took_part

    assert await in_transaction(bot, after) == (1, 0, 2)


async def test_a_consultation_that_counts_everyone_counts_the_web_answer(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    preview = await write(oumar)
    oumar.tap("Count everyone", preview)
    again = await oumar.wait_for(
        lambda m: "Count only verified members (recommended)" in m.labels()
    )
    assert EN._("Counted: everyone's answers, verified members or not.") in text_of(again)
    oumar.tap("Send", again)
    await oumar.wait_for(lambda m: text_of(m).startswith("On its way"))
    async with web_chat(bot) as chat:
        done = await answer_on_the_web(chat, await join(chat))
    assert FR._(HOW_TO_COUNT) not in texts(done)
    assert await close_now(bot) == 1
    results = text_of(await results_to(oumar))
    assert "1 of 8 answered" in results
    assert "left aside" not in results
    assert "• Un jardin partagé: 1 (100%)" in results
    figures = await stored_results(bot)
    assert (figures["respondents"], figures["unverified_aside"]) == (1, 0)
    assert figures["counts_unverified"] is True


async def test_linking_telegram_makes_a_web_answer_count(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    oumar.tap("Send", await write(oumar))
    await oumar.wait_for(lambda m: text_of(m).startswith("On its way"))
    async with web_chat(bot) as chat:
        await answer_on_the_web(chat, await join(chat))
        given = texts(await chat.say("/link"))
    found = re.search(r"/link ([A-Z0-9]{8})", given)
    assert found is not None
    # The same person, on Telegram: sends the code shown in the web chat.
    phone = emulator.resident(73_001, language_code="fr")
    phone.send(f"/link {found[1]}")
    await phone.wait_for(lambda m: "linked to your profile" in text_of(m) or "lié" in text_of(m))
    [person] = await web_people(bot)
    assert person.verified_at is None  # nothing stored: the Telegram account is the proof

    assert await close_now(bot) == 1
    results = text_of(await results_to(oumar))
    assert "1 of 8 answered" in results and "left aside" not in results
    assert "• Un jardin partagé: 1 (100%)" in results
    figures = await stored_results(bot)
    assert (figures["respondents"], figures["unverified_aside"]) == (1, 0)


# --- calls -----------------------------------------------------------------------------------


async def send_call_to_everyone(nadia: FakeUser, title: str, verified_only: bool) -> None:
    nadia.send("/call")
    await nadia.wait_for(lambda m: text_of(m).startswith("A call for talents"))
    nadia.send(title)
    await nadia.wait_for(lambda m: text_of(m).startswith("Describe what is needed"))
    nadia.send("Samedi matin, au jardin.")
    nadia.tap("✅ Done", await nadia.wait_for(lambda m: "✅ Done" in m.labels()))
    nadia.tap("✅ Done", await nadia.wait_for(lambda m: "Evenings" in m.labels()))
    nadia.tap("1", await nadia.wait_for(lambda m: "1" in m.labels()))
    nadia.tap("In a week", await nadia.wait_for(lambda m: "In a week" in m.labels()))
    preview = await nadia.wait_for(
        lambda m: text_of(m).startswith("Preview") and title in text_of(m)
    )
    assert EN._("Answers from unverified members: taken, and marked as such.") in text_of(preview)
    if verified_only:
        nadia.tap("Take verified members only", preview)
        preview = await nadia.wait_for(lambda m: "Take everyone's answers" in m.labels())
        assert EN._(
            "Answers from unverified members: refused (they are told how to get verified)."
        ) in text_of(preview)
    nadia.tap("Send", preview)
    await nadia.wait_for(lambda m: text_of(m).startswith("On its way") and m is not preview)


async def test_a_call_for_verified_members_refuses_unverified_answers_kindly(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    bot = await start_bot(limits=FAST)
    async with web_chat(bot) as chat:
        await join(chat)
        nadia = await coordinator_of(bot, emulator, council, 74_001)
        await send_call_to_everyone(nadia, "Désherbage", verified_only=True)
        while "Désherbage" not in texts(chat.shown):
            await chat.mailed()
        refused = await chat.tap("🙋 " + FR._("I can help"))
        assert FR._(
            "Thank you for offering! This call takes answers from verified members only "
            "(so that each person counts once)."
        ) in texts(refused)
        assert FR._(HOW_TO_COUNT) in texts(refused)
        assert await answers(bot) == []

        # A call that takes everyone: the answer is taken, and marked to the coordinator.
        await send_call_to_everyone(nadia, "Arrosage", verified_only=False)
        while "Arrosage" not in texts(chat.shown[-1:]):
            await chat.mailed()
        await chat.tap("🙋 " + FR._("I can help"))
        assert await answers(bot) == [("yes", None)]
        [person] = await web_people(bot)
        await nadia.wait_for(
            lambda m: (
                text_of(m)
                == f"{person.first_name or '—'} (not verified) answered “I can help” to “Arrosage”."
            )
        )

    async def calls(session: AsyncSession) -> list[tuple[str, bool]]:
        rows = await session.execute(select(Call.title, Call.accepts_unverified).order_by(Call.id))
        return [(title, accepts) for title, accepts in rows]

    assert await in_transaction(bot, calls) == [("Désherbage", False), ("Arrosage", True)]
    assert await in_transaction(bot, lambda s: s.scalar(select(func.count(CallAnswer.id)))) == 1
