"""Button data is typed, at most 64 bytes, decoded in one place, and forged data is refused
kindly before any handler sees it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.app import CoupDePouce
from flows.broadcasts.buttons import StopButton
from flows.buttons import Button, decode
from flows.calls.buttons import AnswerButton, Consent, IntroductionButton, RelayButton
from flows.consultations.buttons import AnswerButton as ConsultationAnswerButton
from flows.consultations.buttons import ConsultationButton, ConsultationOp
from flows.engine import Action, Context, ConversationChoice, Engine, Flow
from flows.meetings.buttons import MeetingButton, MeetingOp, RsvpAnswer, RsvpButton
from flows.privacy.buttons import StayButton
from flows.registry import FLOWS
from flows.talents.buttons import Refresh, RefreshButton
from storage.models import Answer, Council, Rsvp
from tests.conftest import StartBot
from tests.emulator import BotApiEmulator, FakeUser
from tests.helpers import EN, onboard

BROKEN = "Sorry, this button does not work."


class Shade(enum.StrEnum):
    LIGHT = "light"
    DARK = "dark"


@dataclass(frozen=True)
class ProbeButton(Button, prefix="probe"):
    number: int
    shade: Shade
    flag: bool
    word: str


def test_the_flows_buttons_keep_the_format_of_buttons_already_sent() -> None:
    assert RsvpButton(12, RsvpAnswer.COMING).pack() == "mtg:12:coming"
    assert MeetingButton(12, MeetingOp.CANCEL).pack() == "mto:12:cancel"
    assert AnswerButton(3, Answer.MAYBE).pack() == "call:3:maybe"
    assert IntroductionButton(4, Consent.NO).pack() == "intro:4:no"
    assert RelayButton(4).pack() == "relay:4"
    assert StopButton(9).pack() == "bstop:9"
    assert RefreshButton(5, Refresh.EDIT).pack() == "tref:5:edit"
    assert ConsultationAnswerButton(7).pack() == "cons:7"
    assert ConsultationButton(7, ConsultationOp.FOLLOW).pack() == "cso:7:follow"
    assert StayButton(8).pack() == "stay:8"
    assert ConversationChoice(3, "14:30").pack() == "c:3:14:30"
    assert RsvpAnswer.DECLINED.rsvp is Rsvp.DECLINED


@pytest.mark.parametrize(
    "button",
    [
        ProbeButton(0, Shade.LIGHT, True, "word"),
        ProbeButton(-5, Shade.DARK, False, ""),
        ProbeButton(2**62, Shade.DARK, True, "été ☀"),
        RsvpButton(1, RsvpAnswer.MAYBE),
        ConsultationButton(2**31, ConsultationOp.SEE),
        ConversationChoice(1, "cat:home"),
    ],
)
def test_a_packed_button_unpacks_to_itself(button: Button) -> None:
    data = button.pack()
    assert len(data.encode()) <= 64
    assert type(button).unpack(data) == button
    known: dict[str, type[Button]] = {
        "probe": ProbeButton,
        "mtg": RsvpButton,
        "cso": ConsultationButton,
        "c": ConversationChoice,
    }
    assert decode(data, known) == button


def test_what_cannot_be_sent_fails_when_packed() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        ProbeButton(1, Shade.LIGHT, True, "é" * 30).pack()
    with pytest.raises(ValueError, match="':'"):
        ProbeButton(1, Shade.LIGHT, True, "a:b").pack()
    with pytest.raises(ValueError, match="64 bytes"):
        ConversationChoice(1, "x" * 62).pack()
    with pytest.raises(ValueError, match="without a value"):
        ConversationChoice(1, "")


FORGED = [
    "probe:x:light:1:w",  # not an int
    "probe:01:light:1:w",  # not as we write ints
    "probe:\u0661:light:1:w",  # another script's digit
    "probe: 1:light:1:w",
    "probe:1:grey:1:w",  # not one of the enum's values
    "probe:1:LIGHT:1:w",
    "probe:1:light:yes:w",  # not a boolean
    "probe:1:light:1",  # a field missing
    "probe:1:light:1:w:extra",  # one too many
    "probe",
    "probe:1:light:1:" + "w" * 60,  # longer than Telegram allows
    "probe:" + "9" * 5000 + ":light:1:w",
    "nope:1:light:1:w",  # nobody's prefix
    "c:1:",  # a choice without a value
    "c:x:yes",
    "",
    ":",
]


@pytest.mark.parametrize("forged", FORGED)
def test_forged_data_decodes_to_nothing(forged: str) -> None:
    assert decode(forged, {"probe": ProbeButton, "c": ConversationChoice}) is None


def test_a_button_the_engine_could_not_decode_fails_when_it_is_built() -> None:
    @dataclass
    class Loose(Button, prefix="loose"):  # not frozen
        number: int

    @dataclass(frozen=True)
    class Floaty(Button, prefix="floaty"):
        amount: float

    async def nothing(ctx: Context, button: Button) -> None:
        pass

    sessions = async_sessionmaker()
    for kind, message in ((Loose, "frozen dataclass"), (Floaty, "ints, strings")):
        with pytest.raises(TypeError, match=message):
            Engine([Flow("odd", actions=[Action(kind, nothing)])], sessions)
    twice = Flow("twice", actions=[Action(RelayButton, nothing)])
    with pytest.raises(ValueError, match="used twice"):
        Engine([*FLOWS, twice], sessions)
    with pytest.raises(ValueError, match="prefix"):

        class Clash(Button, prefix="a:b"):
            pass


# --- through the real stack ------------------------------------------------------------------

received: list[ProbeButton] = []


async def probe(ctx: Context, button: ProbeButton) -> None:
    received.append(button)
    ctx.toast = "probed"


PROBE = Flow(name="probe", actions=[Action(ProbeButton, probe)])


async def toast_for(emulator: BotApiEmulator, user: FakeUser, data: str) -> str | None:
    before = len(user.answered_callbacks)
    user.tap_data(data, user.inbox[-1])
    await emulator.wait_until(lambda: len(user.answered_callbacks) > before or None, timeout=5)
    toast: str | None = user.answered_callbacks[-1].params.get("text")
    return toast


async def test_forged_taps_are_refused_kindly_before_any_handler(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    await start_bot(flows=[*FLOWS, PROBE])
    sam = emulator.resident(4101, language_code="en")
    await onboard(sam, EN)
    received.clear()
    for forged in FORGED:
        assert await toast_for(emulator, sam, forged) in {BROKEN, "This button has expired."}
    assert received == []
    good = ProbeButton(7, Shade.DARK, True, "ok")
    assert await toast_for(emulator, sam, good.pack()) == "probed"
    assert received == [good]
    assert sam.inbox[-1].text != EN._(
        "Sorry, something went wrong on our side. Please try again in a moment."
    )


@pytest.mark.parametrize(
    "forged",
    [
        "mtg:1:waiting",  # a state, not an answer a resident may give
        "mtg:1:invited",
        "mto:1:delete",
        "mto:abc:who",
        "cons:1:2",
        "cso:1",
        "call:1:perhaps",
        "intro:1:maybe",
        "relay:",
        "bstop:-",
        "tref:1:ok:1",
        "stay:me",
    ],
)
async def test_forged_data_for_the_flows_buttons_is_refused(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, forged: str
) -> None:
    sam = emulator.resident(4102, language_code="en")
    await onboard(sam, EN)
    assert await toast_for(emulator, sam, forged) == BROKEN
