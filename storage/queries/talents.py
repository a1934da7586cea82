"""The skills catalogue and the talent directory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import Council, Person, PersonStatus, ProfileSkill, Skill, TalentProfile


async def skills(
    session: AsyncSession, council_id: int, *, active_only: bool = True
) -> Sequence[Skill]:
    query = select(Skill).where(Skill.council_id == council_id)
    if active_only:
        query = query.where(Skill.active.is_(True))
    return (await session.scalars(query.order_by(Skill.position, Skill.id))).all()


async def skill_by_key(session: AsyncSession, council_id: int, key: str) -> Skill | None:
    return await session.scalar(
        select(Skill).where(Skill.council_id == council_id, Skill.key == key)
    )


async def add_skill(
    session: AsyncSession, council: Council, key: str, category: str, labels: dict[str, str]
) -> Skill:
    position = await session.scalar(
        select(func.coalesce(func.max(Skill.position), 0)).where(Skill.council_id == council.id)
    )
    skill = Skill(
        council_id=council.id,
        key=key,
        category=category,
        labels=labels,
        position=int(position or 0) + 1,
        active=True,
    )
    session.add(skill)
    await session.flush()
    return skill


async def profile(session: AsyncSession, council_id: int, person_id: int) -> TalentProfile | None:
    return await session.scalar(
        select(TalentProfile)
        .where(TalentProfile.council_id == council_id, TalentProfile.person_id == person_id)
        .options(selectinload(TalentProfile.skills))
    )


async def set_skills(
    session: AsyncSession, talent: TalentProfile, skill_ids: Iterable[int]
) -> None:
    """Replace the profile's skills."""
    await session.execute(delete(ProfileSkill).where(ProfileSkill.profile_id == talent.id))
    session.add_all(
        ProfileSkill(profile_id=talent.id, skill_id=skill_id) for skill_id in set(skill_ids)
    )
    await session.flush()
    await session.refresh(talent, ["skills"])


async def remove_profile(session: AsyncSession, talent: TalentProfile) -> None:
    await session.execute(delete(TalentProfile).where(TalentProfile.id == talent.id))


COUNT_CAP = 200  # past this, "more than 200": nobody pages further, and counting costs


@dataclass(frozen=True)
class Criteria:
    """What a coordinator looks for; None means any."""

    council_id: int
    skill_id: int | None = None
    weekdays: bool = False
    evenings: bool = False
    weekends: bool = False
    neighbourhood: str | None = None


@dataclass(frozen=True)
class Found:
    profile_id: int
    person_id: int
    first_name: str
    weekdays: bool
    evenings: bool
    weekends: bool
    neighbourhood: str | None
    skill_ids: tuple[int, ...]


def _matching(criteria: Criteria) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        TalentProfile.council_id == criteria.council_id,
        TalentProfile.hidden_at.is_(None),
        Person.status == PersonStatus.ACTIVE,
    ]
    if criteria.skill_id is not None:
        conditions.append(
            exists().where(
                ProfileSkill.profile_id == TalentProfile.id,
                ProfileSkill.skill_id == criteria.skill_id,
            )
        )
    if criteria.weekdays:
        conditions.append(TalentProfile.weekdays.is_(True))
    if criteria.evenings:
        conditions.append(TalentProfile.evenings.is_(True))
    if criteria.weekends:
        conditions.append(TalentProfile.weekends.is_(True))
    if criteria.neighbourhood is not None:
        conditions.append(TalentProfile.neighbourhood == criteria.neighbourhood)
    return conditions


async def search(
    session: AsyncSession, criteria: Criteria, offset: int, limit: int
) -> tuple[int, list[Found]]:
    """One page of matching profiles, oldest first, and how many match in all."""
    conditions = _matching(criteria)
    matching = select(TalentProfile.id).join(Person).where(*conditions).limit(COUNT_CAP + 1)
    total = await session.scalar(select(func.count()).select_from(matching.subquery()))
    rows = await session.execute(
        select(
            TalentProfile.id,
            TalentProfile.person_id,
            Person.first_name,
            TalentProfile.weekdays,
            TalentProfile.evenings,
            TalentProfile.weekends,
            TalentProfile.neighbourhood,
        )
        .join(Person)
        .where(*conditions)
        .order_by(TalentProfile.id)
        .offset(offset)
        .limit(limit)
    )
    page = list(rows)
    skills_of: dict[int, list[int]] = {row[0]: [] for row in page}
    if page:
        pairs = await session.execute(
            select(ProfileSkill.profile_id, ProfileSkill.skill_id).where(
                ProfileSkill.profile_id.in_(skills_of)
            )
        )
        for profile_id, skill_id in pairs:
            skills_of[profile_id].append(skill_id)
    found = [Found(*row, skill_ids=tuple(sorted(skills_of[row[0]]))) for row in page]
    return int(total or 0), found


def matching_people(criteria: Criteria) -> Select[int]:
    """The person ids a search would find: an audience for a call."""
    return select(TalentProfile.person_id).join(Person).where(*_matching(criteria))
