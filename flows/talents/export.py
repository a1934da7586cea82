"""The directory and its calls as rows, for `coupdepouce export`.

Contact details appear only for residents who said project holders may contact them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from flows.calls import service as calls
from flows.i18n import N_, Translator
from flows.spreadsheet import Column
from flows.talents.catalogue import skill_label
from storage.models import Call, Council, Person, TalentProfile
from storage.queries import talents

DIRECTORY_COLUMNS = (
    Column("first_name", N_("First name")),
    Column("skills", N_("Skills")),
    Column("languages", N_("Languages")),
    Column("own_words", N_("In their own words")),
    Column("weekdays", N_("Weekdays")),
    Column("evenings", N_("Evenings")),
    Column("weekends", N_("Weekends")),
    Column("neighbourhood", N_("Neighbourhood")),
    Column("contact", N_("Contact")),
    Column("joined_at", N_("Joined")),
    Column("confirmed_at", N_("Last confirmed")),
    Column("hidden", N_("Hidden")),
)


async def directory(session: AsyncSession, council: Council) -> list[dict[str, Any]]:
    """One row per talent, by sign-up, skills named in the council's language."""
    t = Translator(council.locale)
    names = {
        skill.id: skill_label(skill, t)
        for skill in await talents.skills(session, council.id, active_only=False)
    }
    query = (
        select(TalentProfile, Person)
        .join(Person, Person.id == TalentProfile.person_id)
        .where(TalentProfile.council_id == council.id)
        .options(selectinload(TalentProfile.skills), selectinload(Person.identities))
        .order_by(TalentProfile.id)
    )
    rows = []
    for talent, person in (await session.execute(query)).all():
        usernames = [
            i.username for i in person.identities if i.channel == "telegram" and i.username
        ]
        rows.append(
            {
                "first_name": person.first_name,
                "skills": ", ".join(
                    names[link.skill_id] for link in talent.skills if link.skill_id in names
                ),
                "languages": talent.languages or "",
                "own_words": talent.own_words or "",
                "weekdays": talent.weekdays,
                "evenings": talent.evenings,
                "weekends": talent.weekends,
                "neighbourhood": talent.neighbourhood or "",
                "contact": f"@{usernames[0]}" if talent.contact_ok and usernames else "",
                "joined_at": talent.created_at,
                "confirmed_at": talent.confirmed_at,
                "hidden": talent.hidden_at is not None,
            }
        )
    return rows


async def call_answers(session: AsyncSession, council: Council) -> list[dict[str, Any]]:
    """One row per call, with who answered what (first names only)."""
    query = select(Call).where(Call.council_id == council.id).order_by(Call.id)
    rows = []
    for call in await session.scalars(query):
        names = await calls.tally(session, call.id)
        rows.append(
            {
                "title": call.title,
                "status": call.status.value,
                "deadline": call.deadline,
                "people_needed": call.people_needed,
                "accepts_unverified": call.accepts_unverified,
                **{
                    f"{answer.value}": ", ".join(helper.first_name for helper in helpers)
                    for answer, helpers in names.items()
                },
                # Those who answered without being verified members (web chat only).
                "unverified": ", ".join(
                    helper.first_name
                    for helpers in names.values()
                    for helper in helpers
                    if not helper.verified
                ),
            }
        )
    return rows
