"""What the consultations' conversations keep while they go on."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.consultations.service import Audience, NewQuestion
from flows.drafts import Draft
from flows.talents.picker import SkillsDraft
from storage.models import QuestionKind


@dataclass
class ConsultationDraft(SkillsDraft, key="consultation"):
    """An organiser writing a consultation, or closing one (`edit_id`)."""

    title: str = ""
    questions: list[NewQuestion] = field(default_factory=list)
    kind: QuestionKind = QuestionKind.SINGLE  # of the question being written
    text: str = ""  # the question being written, while its choices are asked
    rewriting: int | None = None  # the index of the question written again (from the preview)
    audience: Audience = Audience.ALL
    place: str | None = None  # the neighbourhood asked
    anonymous: bool = True
    live: bool = False  # respondents see the results so far
    opens_tomorrow: bool = False
    days: str = "7"  # how long it stays open: a number of days, or "friday"
    everyone: bool = False  # answers of unverified members count too
    edit_id: int = 0  # the consultation being closed or followed up


@dataclass
class BallotDraft(Draft, key="ballot"):
    """A resident answering a consultation, one question at a time."""

    consultation_id: int = 0
    question: int = 0  # the index of the question shown
    ticked: list[int] | None = None  # a multiple choice's ticks not saved yet (None: saved)
