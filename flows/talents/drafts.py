"""What the talent directory's conversations keep while they go on."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.drafts import Draft
from flows.staff import StaffDraft
from flows.talents import service


@dataclass
class TalentDraft(Draft, key="talents"):
    """A resident writing or editing their profile."""

    council_id: int = 0
    editing: bool = False  # one part of a saved profile: saved as soon as it is answered
    category: str = ""  # the skill category open
    profile: service.Draft = field(default_factory=service.Draft)


@dataclass
class SearchDraft(StaffDraft, key="search"):
    """A coordinator searching the directory."""

    category: str = ""
    skill_id: int | None = None
    when: str | None = None
    place: str | None = None
    page: int = 0
