"""The talent directory among the council's pages: who can lend what, filtered as a
coordinator needs (a skill, a time of the week, a neighbourhood)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.i18n import N_
from flows.sections import DashboardSection, Figure, Page, Visit, whole_number
from flows.staff import COORDINATING
from flows.talents.catalogue import AVAILABILITY, skill_label
from storage.models import Council, TalentProfile
from storage.queries import talents

PAGE_SIZE = 50


async def directory(v: Visit) -> Page:
    """The people who match the filters, a page at a time."""
    skills = list(await talents.skills(v.session, v.council.id))
    names = {skill.id: skill_label(skill, v.t) for skill in skills}
    skill_id = whole_number(v.query.get("skill"))
    when = v.query.get("when", "")
    place = v.query.get("neighbourhood", "")
    page_number = max(0, whole_number(v.query.get("page")) or 0)
    criteria = talents.Criteria(
        council_id=v.council.id,
        skill_id=skill_id if skill_id in names else None,
        weekdays=when == "weekdays",
        evenings=when == "evenings",
        weekends=when == "weekends",
        neighbourhood=place if place in v.council.neighbourhoods else None,
    )
    total, found = await talents.search(v.session, criteria, page_number * PAGE_SIZE, PAGE_SIZE)
    people = [
        {
            "first_name": person.first_name,
            "skills": ", ".join(names[s] for s in person.skill_ids if s in names),
            "free": ", ".join(
                v.t._(label) for key, label in AVAILABILITY.items() if getattr(person, key)
            ),
            "neighbourhood": person.neighbourhood or "",
        }
        for person in found
    ]
    capped = total > talents.COUNT_CAP
    found_line = (
        v.t._("More than {count} people found").format(count=v.t.number(talents.COUNT_CAP))
        if capped
        else v.t.ngettext("{count} person found", "{count} people found", total).format(
            count=v.t.number(total)
        )
    )
    filters = {
        "skill": criteria.skill_id,
        "when": when,
        "neighbourhood": criteria.neighbourhood,
    }
    more = (page_number + 1) * PAGE_SIZE < total or (capped and len(found) == PAGE_SIZE)
    return Page(
        template="directory.html",
        context={
            "people": people,
            "found_line": found_line,
            "skills": sorted(names.items(), key=lambda item: item[1]),
            "availability": [(key, v.t._(label)) for key, label in AVAILABILITY.items()],
            "filters": filters,
            "page_number": page_number,
            "more": more,
            "query": {key: value for key, value in filters.items() if value},
        },
    )


async def figures(session: AsyncSession, council: Council) -> list[Figure]:
    listed = await session.scalar(
        select(func.count()).where(TalentProfile.council_id == council.id)
    )
    return [Figure(N_("In the directory"), int(listed or 0))]


DIRECTORY = DashboardSection(
    "directory", N_("Directory"), COORDINATING, 10, directory, figures=figures
)
