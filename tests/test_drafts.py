"""A conversation's draft is a dataclass: kept across events as JSON, read back the same,
and a draft kept in an older shape ends the conversation kindly instead of failing."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import CoupDePouce
from flows.consultations.drafts import ConsultationDraft
from flows.consultations.service import Audience, NewQuestion
from flows.drafts import Draft
from flows.engine import END, Command, Context, Engine, Flow, Next, Option, Prompt, Step, StepName
from flows.meetings.drafts import MeetingDraft
from flows.registry import FLOWS
from storage.models import Conversation, Council, QuestionKind
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator
from tests.helpers import EN, onboard


class Shade(enum.StrEnum):
    LIGHT = "light"
    DARK = "dark"


@dataclass(frozen=True)
class Part:
    name: str
    size: int = 0


@dataclass
class ProbeDraft(Draft, key="probe"):
    words: list[str] = field(default_factory=list)
    at: datetime | None = None
    day: date | None = None
    hour: time | None = None
    shade: Shade = Shade.LIGHT
    parts: list[Part] = field(default_factory=list)
    ratio: float = 0.5
    chosen: list[int] | None = None


def test_a_draft_comes_back_the_same_from_json() -> None:
    draft = ProbeDraft(
        words=["un", "deux"],
        at=datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        day=date(2026, 12, 5),
        hour=time(14, 30),
        shade=Shade.DARK,
        parts=[Part("a", 2), Part("b")],
        ratio=2,
        chosen=[3],
    )
    kept = json.loads(json.dumps(draft.dump()))
    assert ProbeDraft.load(kept) == draft
    assert kept["shade"] == "dark" and kept["day"] == "2026-12-05"
    meeting = MeetingDraft(council_id=3, day=date(2026, 5, 1), start=time(9), skills=[4])
    assert MeetingDraft.load(json.loads(json.dumps(meeting.dump()))) == meeting
    consultation = ConsultationDraft(
        questions=[NewQuestion(QuestionKind.MULTIPLE, "Quoi ?", ["a", "b"])],
        audience=Audience.NEIGHBOURHOOD,
        place="La Gare",
    )
    assert ConsultationDraft.load(json.loads(json.dumps(consultation.dump()))) == consultation


@pytest.mark.parametrize(
    "kept",
    [
        "words",
        ["a"],
        {"words": "not a list"},
        {"words": [1, 2]},
        {"at": "2026-03-29T01:30:00"},  # no time zone
        {"at": "yesterday"},
        {"shade": "grey"},
        {"parts": [{"size": 2}]},  # a part without its name
        {"ratio": True},
        {"chosen": ["1"]},
    ],
)
def test_a_draft_that_cannot_be_read_is_a_fresh_one(kept: object) -> None:
    assert ProbeDraft.load(kept) == ProbeDraft()


def test_a_field_added_since_takes_its_default() -> None:
    assert ProbeDraft.load({"words": ["x"], "gone": 1}) == ProbeDraft(words=["x"])


def test_a_draft_that_could_not_be_kept_fails_when_the_engine_is_built() -> None:
    @dataclass
    class NoDefault(Draft, key="no_default"):
        needed: int

    @dataclass
    class Keyless(Draft):
        size: int = 0

    @dataclass
    class Odd(Draft, key="odd"):
        things: set[int] = field(default_factory=set)

    @dataclass
    class Again(Draft, key="probe"):
        size: int = 0

    sessions = async_sessionmaker()
    for kind, message in (
        (NoDefault, "needs a default"),
        (Keyless, "no key"),
        (Odd, "cannot keep"),
    ):
        with pytest.raises(TypeError, match=message):
            Engine([Flow("odd", drafts=[kind])], sessions)
    with pytest.raises(ValueError, match="used twice"):
        Engine([Flow("one", drafts=[ProbeDraft]), Flow("two", drafts=[Again])], sessions)
    with pytest.raises(ValueError, match="naive"):
        ProbeDraft(at=datetime(2026, 1, 1)).dump()  # noqa: DTZ001


# --- through the real stack ------------------------------------------------------------------


class ProbeStep(StepName):
    WORDS = "probe.words"


async def start_probe(ctx: Context) -> Next:
    ctx.drop(ProbeDraft)
    ctx.draft(ProbeDraft).at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    return ProbeStep.WORDS


async def ask_words(ctx: Context) -> Prompt:
    draft = ctx.draft(ProbeDraft)
    assert draft.at is not None
    return Prompt(
        f"{len(draft.words)} {draft.shade.value} {draft.at.isoformat()}",
        [[Option("done", "Done")]],
    )


async def handle_word(ctx: Context, text: str) -> Next:
    draft = ctx.draft(ProbeDraft)
    draft.words.append(text)  # changed in place: kept all the same
    if text == "dark":
        draft.shade = Shade.DARK
    return ProbeStep.WORDS


async def handle_done(ctx: Context, _value: str) -> Next:
    ctx.say(" ".join(ctx.draft(ProbeDraft).words))
    ctx.drop(ProbeDraft)
    return END


PROBE = Flow(
    name="probe",
    drafts=[ProbeDraft],
    steps=[Step(ProbeStep.WORDS, ask_words, on_choice=handle_done, on_text=handle_word)],
    commands=[Command("probe", start_probe, "probe")],
)


async def conversation_of(app: CoupDePouce, chat_id: int) -> Conversation:
    async def run(session: AsyncSession) -> Conversation:
        found = await session.scalar(
            select(Conversation).where(Conversation.external_id == str(chat_id))
        )
        assert found is not None
        return found

    found: Conversation = await in_transaction(app, run)
    return found


async def test_a_draft_changed_in_place_is_kept_between_messages(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(flows=[*FLOWS, PROBE])
    sam = emulator.resident(4201, language_code="en")
    await onboard(sam, EN)
    sam.send("/probe")
    assert (await sam.next_message()).text == "0 light 2026-01-02T03:04:00+00:00"
    sam.send("one")
    assert (await sam.next_message()).text == "1 light 2026-01-02T03:04:00+00:00"
    sam.send("dark")
    assert (await sam.next_message()).text == "2 dark 2026-01-02T03:04:00+00:00"
    kept = (await conversation_of(app, 4201)).data
    assert kept == {
        "probe": {
            **ProbeDraft().dump(),
            "words": ["one", "dark"],
            "at": "2026-01-02T03:04:00+00:00",
            "shade": "dark",
        }
    }
    sam.tap("Done")
    assert (await sam.next_message()).text == "one dark"
    assert (await conversation_of(app, 4201)).data == {}


@pytest.mark.parametrize(
    ("step", "data"),
    [
        ("meetings.guests", {"mt_answer": 5}),
        ("consult.answer", {"cs_answer": 1, "cs_q": 0, "cs_ticked": None}),
        ("announcements.preview", {"announce_council": 1, "announce_text": "Bonjour"}),
        ("language.choose", {"locale": "en", "return_to": "onboarding.consent"}),
    ],
)
async def test_a_conversation_kept_in_an_older_shape_ends_kindly(
    bot: CoupDePouce,
    emulator: BotApiEmulator,
    council: Council,
    step: str,
    data: dict[str, object],
) -> None:
    sam = emulator.resident(4202, language_code="en")
    await onboard(sam, EN)

    async def older(session: AsyncSession) -> None:
        await session.execute(
            update(Conversation)
            .where(Conversation.external_id == "4202")
            .values(step=step, data=data, prompt=7, options=["1", "send", "en"])
        )

    await in_transaction(bot, older)
    sam.send("1")
    reply = await sam.next_message()
    assert reply.text == EN._("I mostly work with buttons. Send /help to see what I can do.")
    after = await conversation_of(bot, 4202)
    assert (after.step, after.data) == (None, {})
    await in_transaction(bot, older)
    sam.tap_data("c:7:send", sam.inbox[-1])
    await emulator.wait_until(lambda: sam.answered_callbacks[1:] or None, timeout=5)
    assert sam.answered_callbacks[-1].params.get("text") == EN._("This button has expired.")
    assert (await conversation_of(bot, 4202)).step is None
    sam.send("/help")
    assert "/talents" in ((await sam.next_message()).text or "")
