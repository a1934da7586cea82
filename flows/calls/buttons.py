"""The buttons residents get: on a call, on an introduction request, on a relayed message."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flows.buttons import Button
from storage.models import Answer


class Consent(enum.StrEnum):
    YES = "yes"
    NO = "no"


@dataclass(frozen=True)
class AnswerButton(Button, prefix="call"):
    """A resident's answer to a call (only those it was sent to may answer)."""

    call_id: int
    answer: Answer


@dataclass(frozen=True)
class IntroductionButton(Button, prefix="intro"):
    """A resident's answer to "may we share your contact?" (only theirs counts)."""

    introduction_id: int
    answer: Consent


@dataclass(frozen=True)
class RelayButton(Button, prefix="relay"):
    """Write to the other side of an accepted introduction (only its two sides may)."""

    introduction_id: int
