"""The button of an invitation (residents) and those of a consultation's card (organisers)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flows.buttons import Button


class ConsultationOp(enum.StrEnum):
    SEE = "see"  # the results so far, or the final ones
    CLOSE = "close"  # close it now
    FOLLOW = "follow"  # tell the respondents what was done with their answers


@dataclass(frozen=True)
class AnswerButton(Button, prefix="cons"):
    """Start (or change) one's answers (only those the consultation was sent to)."""

    consultation_id: int


@dataclass(frozen=True)
class ConsultationButton(Button, prefix="cso"):
    """A button on a consultation's card (only its council's organisers and coordinators)."""

    consultation_id: int
    op: ConsultationOp
