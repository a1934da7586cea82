"""What the meetings' conversations keep while they go on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time

from flows.drafts import Draft
from flows.meetings.service import DEFAULT_REMINDER_HOURS, Audience
from flows.talents.picker import SkillsDraft


@dataclass
class MeetingDraft(SkillsDraft, key="meeting"):
    """An organiser writing a meeting, or changing one (`edit_id`)."""

    title: str = ""
    text: str = ""
    place: str = ""
    latitude: float | None = None  # the place shared on a map, if it was
    longitude: float | None = None
    day: date | None = None  # in the council's time zone
    start: time | None = None
    minutes: int = 120
    capacity: int = 0  # no limit
    audience: Audience = Audience.ALL
    call_id: int | None = None  # the call whose helpers are invited
    deadline_days: int = 0  # answers close so many days before; 0: no deadline
    reminders: list[int] = field(default_factory=lambda: list(DEFAULT_REMINDER_HOURS))
    note: str = ""  # a personal line in the reminders
    edit_id: int = 0  # the meeting being changed
    page: int = 0  # of the attendance list


@dataclass
class RsvpDraft(Draft, key="rsvp"):
    """A resident coming to a meeting, saying who comes along and what would help."""

    meeting_id: int = 0
    needs: list[str] = field(default_factory=list)  # keys of NEEDS
