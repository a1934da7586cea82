"""Talent directory rules: the catalogue, joining, editing and leaving."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from flows.talents.catalogue import DEFAULT_SKILLS
from storage.models import Council, Skill, TalentProfile, utcnow
from storage.queries import talents

MAX_OWN_WORDS = 300
MAX_LANGUAGES = 200


async def seed_catalogue(session: AsyncSession, council: Council) -> None:
    """Give a council the shipped skills it does not have yet."""
    existing = {skill.key for skill in await talents.skills(session, council.id, active_only=False)}
    for position, default in enumerate(DEFAULT_SKILLS, start=1):
        if default.key not in existing:
            session.add(
                Skill(
                    council_id=council.id,
                    key=default.key,
                    category=default.category,
                    labels={},
                    position=position,
                    active=True,
                )
            )
    await session.flush()


@dataclass
class Draft:
    """A profile being written, kept in the conversation until it is saved."""

    skill_ids: list[int] = field(default_factory=list)
    own_words: str | None = None
    languages: str | None = None
    weekdays: bool = False
    evenings: bool = False
    weekends: bool = False
    neighbourhood: str | None = None
    contact_ok: bool = False

    @classmethod
    def of(cls, talent: TalentProfile) -> Draft:
        return cls(
            skill_ids=sorted(link.skill_id for link in talent.skills),
            own_words=talent.own_words,
            languages=talent.languages,
            weekdays=talent.weekdays,
            evenings=talent.evenings,
            weekends=talent.weekends,
            neighbourhood=talent.neighbourhood,
            contact_ok=talent.contact_ok,
        )


class Saved(enum.Enum):
    JOINED = "joined"
    UPDATED = "updated"


async def save(session: AsyncSession, council: Council, person_id: int, draft: Draft) -> Saved:
    """Create or update the person's profile; a saved profile counts as confirmed now."""
    valid = {skill.id for skill in await talents.skills(session, council.id)}
    talent = await talents.profile(session, council.id, person_id)
    outcome = Saved.UPDATED
    if talent is None:
        talent = TalentProfile(council_id=council.id, person_id=person_id)
        session.add(talent)
        outcome = Saved.JOINED
    talent.own_words = _trimmed(draft.own_words, MAX_OWN_WORDS)
    talent.languages = _trimmed(draft.languages, MAX_LANGUAGES)
    talent.weekdays, talent.evenings, talent.weekends = (
        draft.weekdays,
        draft.evenings,
        draft.weekends,
    )
    allowed_places = set(council.neighbourhoods or [])
    talent.neighbourhood = draft.neighbourhood if draft.neighbourhood in allowed_places else None
    talent.contact_ok = draft.contact_ok
    talent.confirmed_at = utcnow()
    talent.hidden_at = None
    await session.flush()
    await talents.set_skills(session, talent, [s for s in draft.skill_ids if s in valid])
    return outcome


async def leave(session: AsyncSession, council: Council, person_id: int) -> bool:
    """Remove the profile: out of every search and every future call."""
    talent = await talents.profile(session, council.id, person_id)
    if talent is None:
        return False
    await talents.remove_profile(session, talent)
    return True


def _trimmed(text: str | None, limit: int) -> str | None:
    text = (text or "").strip()
    return text[:limit] if text else None


async def confirm(session: AsyncSession, profile_id: int, person_id: int) -> TalentProfile | None:
    """The member says their profile is still right: visible again, asked again in months."""
    talent = await session.get(TalentProfile, profile_id)
    if talent is None or talent.person_id != person_id:
        return None
    talent.confirmed_at = utcnow()
    talent.refresh_asked_at = None
    talent.hidden_at = None
    return talent
