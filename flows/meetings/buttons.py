"""The buttons of an invitation (residents) and of a meeting's card (organisers)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flows.buttons import Button
from storage.models import Rsvp


class RsvpAnswer(enum.StrEnum):
    """What an invitation's buttons offer: a part of :class:`Rsvp` only."""

    COMING = Rsvp.COMING.value
    MAYBE = Rsvp.MAYBE.value
    DECLINED = Rsvp.DECLINED.value

    @property
    def rsvp(self) -> Rsvp:
        return Rsvp(self.value)


class MeetingOp(enum.StrEnum):
    WHO = "who"  # who answered
    TIME = "time"  # change the time
    PLACE = "place"  # change the place
    CANCEL = "cancel"
    ATTEND = "attend"  # mark attendance


@dataclass(frozen=True)
class RsvpButton(Button, prefix="mtg"):
    """A resident's answer to an invitation (only those invited may answer)."""

    meeting_id: int
    answer: RsvpAnswer


@dataclass(frozen=True)
class MeetingButton(Button, prefix="mto"):
    """A button on a meeting's card (only its council's organisers and coordinators)."""

    meeting_id: int
    op: MeetingOp
