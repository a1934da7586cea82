"""What the calls' conversations keep while they go on."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.drafts import Draft
from flows.talents.picker import SkillsDraft


@dataclass
class CallDraft(SkillsDraft, key="call"):
    """A coordinator writing a call for talents."""

    title: str = ""
    text: str = ""
    when: list[str] = field(default_factory=list)  # keys of AVAILABILITY; none: any time
    people: int = 1
    days: int = 7  # answers taken for so many days
    verified_only: bool = False


@dataclass
class AnswerDraft(Draft, key="call_answer"):
    """A resident who offered help, adding a message for the coordinator."""

    call_id: int = 0


@dataclass
class FollowDraft(Draft, key="follow"):
    """A coordinator following a call's answers, or either side of an introduction writing
    through the bot."""

    call_id: int = 0
    introduction_id: int = 0  # the introduction being written through
