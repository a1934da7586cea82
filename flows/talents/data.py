"""What the talent directory keeps about a person, for /mydata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from flows.engine import PersonalData
from flows.i18n import Translator
from storage.models import Council, Person, Skill, TalentProfile


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def profiles_of(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    """Their profile in each council's directory: skills, own words, languages, free time,
    neighbourhood, and whether they may be put in touch."""
    rows = await session.execute(
        select(TalentProfile, Council.slug)
        .join(Council, Council.id == TalentProfile.council_id)
        .where(TalentProfile.person_id == person.id)
        .options(selectinload(TalentProfile.skills))
        .order_by(TalentProfile.id)
    )
    profiles = []
    for profile, council in rows:
        skill_ids = [skill.skill_id for skill in profile.skills]
        names: list[str] = (
            list(await session.scalars(select(Skill.key).where(Skill.id.in_(skill_ids))))
            if skill_ids
            else []
        )
        profiles.append(
            {
                "council": council,
                "skills": sorted(names),
                "own_words": profile.own_words,
                "languages": profile.languages,
                "free_time": [
                    name
                    for name, free in (
                        ("weekdays", profile.weekdays),
                        ("evenings", profile.evenings),
                        ("weekends", profile.weekends),
                    )
                    if free
                ],
                "neighbourhood": profile.neighbourhood,
                "may_be_put_in_touch": profile.contact_ok,
                "created_at": _iso(profile.created_at),
                "confirmed_at": _iso(profile.confirmed_at),
                "hidden_at": _iso(profile.hidden_at),
            }
        )
    return profiles


def profiles_line(t: Translator, profiles: list[dict[str, Any]]) -> str | None:
    if not profiles:
        return None
    skills = sum(len(profile["skills"]) for profile in profiles)
    return t.ngettext(
        "Your profile in the talent directory, with {count} skill",
        "Your profile in the talent directory, with {count} skills",
        skills,
    ).format(count=t.number(skills))


PROFILES = PersonalData("talent_directory", ("talent_profiles",), profiles_of, profiles_line)
