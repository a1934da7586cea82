"""/search, for coordinators: find residents by skill, free time and neighbourhood.

Results are paged and show first names, skills and free time: never contact details.
The council is checked again at every step: button data can be forged, roles revoked.
"""

from __future__ import annotations

from flows.engine import END, Command, Context, Flow, Next, Option, Prompt, Step, StepName
from flows.i18n import N_
from flows.staff import council_in_use, council_options, start_in_council
from flows.talents.catalogue import category_label, skill_label
from flows.talents.drafts import SearchDraft
from flows.talents.flow import AVAILABILITY
from storage.models import Council, Role
from storage.queries import talents


class SearchStep(StepName):
    """/search's questions and results."""

    COUNCIL = "search.council"
    PLACE = "search.place"
    RESULTS = "search.results"
    SKILL = "search.skill"
    SKILL_IN_CATEGORY = "search.skill_in_category"
    WHEN = "search.when"


PAGE_SIZE = 10
ANY = "any"


async def start_search(ctx: Context) -> Next:
    """Search in the coordinator's council, asking which if several."""
    ctx.drop(SearchDraft)
    return await start_in_council(ctx, SearchDraft, SearchStep.SKILL, SearchStep.COUNCIL)


async def council(ctx: Context) -> Council | None:
    """The council searched, if the sender still coordinates it."""
    return await council_in_use(ctx, SearchDraft)


def refused(ctx: Context) -> Next:
    ctx.drop(SearchDraft)
    ctx.say(ctx._("This command is for council coordinators and organisers."))
    return END


async def ask_council(ctx: Context) -> Prompt:
    return Prompt(ctx._("Search the directory of which council?"), await council_options(ctx))


async def handle_council(ctx: Context, value: str) -> Next:
    ctx.draft(SearchDraft).council_id = int(value)
    return SearchStep.SKILL


async def ask_skill(ctx: Context) -> Prompt:
    """Which skill: a category first, or any."""
    found = await council(ctx)
    skills = await talents.skills(ctx.session, found.id) if found else []
    rows = [
        [Option(f"cat:{category}", category_label(category, ctx.t))]
        for category in dict.fromkeys(skill.category for skill in skills)
    ]
    rows.append([Option(ANY, ctx._("Any skill"))])
    return Prompt(ctx._("Which skill are you looking for?"), rows)


async def handle_skill(ctx: Context, value: str) -> Next:
    if await council(ctx) is None:
        return refused(ctx)
    if value.startswith("cat:"):
        ctx.draft(SearchDraft).category = value.removeprefix("cat:")
        return SearchStep.SKILL_IN_CATEGORY
    ctx.draft(SearchDraft).skill_id = None
    return SearchStep.WHEN


async def ask_skill_in_category(ctx: Context) -> Prompt:
    found = await council(ctx)
    category = ctx.draft(SearchDraft).category
    skills = await talents.skills(ctx.session, found.id) if found else []
    rows = [
        [Option(str(skill.id), skill_label(skill, ctx.t))]
        for skill in skills
        if skill.category == category
    ]
    rows.append([Option("back", ctx.t.back)])
    return Prompt(category_label(category, ctx.t), rows)


async def handle_skill_in_category(ctx: Context, value: str) -> Next:
    if value == "back":
        return SearchStep.SKILL
    ctx.draft(SearchDraft).skill_id = int(value)
    return SearchStep.WHEN


async def ask_when(ctx: Context) -> Prompt:
    rows = [[Option(ANY, ctx._("Any time"))]]
    rows += [[Option(key, ctx._(label))] for key, label in AVAILABILITY.items()]
    return Prompt(ctx._("Free when?"), rows)


async def handle_when(ctx: Context, value: str) -> Next:
    found = await council(ctx)
    if found is None:
        return refused(ctx)
    draft = ctx.draft(SearchDraft)
    draft.when, draft.page = (None if value == ANY else value), 0
    return SearchStep.PLACE if found.neighbourhoods else SearchStep.RESULTS


async def ask_place(ctx: Context) -> Prompt:
    found = await council(ctx)
    places = found.neighbourhoods if found else []
    rows = [[Option(ANY, ctx._("Any neighbourhood"))]]
    rows += [[Option(str(index), name)] for index, name in enumerate(places)]
    return Prompt(ctx._("In which neighbourhood?"), rows)


async def handle_place(ctx: Context, value: str) -> Next:
    found = await council(ctx)
    if found is None:
        return refused(ctx)
    ctx.draft(SearchDraft).place = None if value == ANY else found.neighbourhoods[int(value)]
    return SearchStep.RESULTS


async def ask_results(ctx: Context) -> Prompt:
    """One page of results."""
    found = await council(ctx)
    if found is None:
        return Prompt(ctx._("This command is for council coordinators and organisers."))
    draft = ctx.draft(SearchDraft)
    when = draft.when
    criteria = talents.Criteria(
        council_id=found.id,
        skill_id=draft.skill_id,
        weekdays=when == "weekdays",
        evenings=when == "evenings",
        weekends=when == "weekends",
        neighbourhood=draft.place,
    )
    page = draft.page
    total, results = await talents.search(ctx.session, criteria, page * PAGE_SIZE, PAGE_SIZE)
    if total == 0:
        return Prompt(
            ctx._("Nobody in the directory matches this search."),
            [[Option("new", ctx._("New search")), Option("close", ctx._("Close"))]],
        )
    names = {s.id: skill_label(s, ctx.t) for s in await talents.skills(ctx.session, found.id)}
    capped = total > talents.COUNT_CAP
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    if capped:
        found_line = (
            ctx._("More than {count} people found").format(count=ctx.t.number(talents.COUNT_CAP))
            + f" — {ctx.t.number(page + 1)}"
        )
    else:
        found_line = (
            ctx.ngettext("{count} person found", "{count} people found", total).format(
                count=ctx.t.number(total)
            )
            + f" — {ctx.t.number(page + 1)}/{ctx.t.number(pages)}"
        )
    lines = [found_line]
    for number, person in enumerate(results, start=page * PAGE_SIZE + 1):
        skills = ", ".join(names[s] for s in person.skill_ids if s in names) or "—"
        free = ", ".join(
            ctx._(label) for key, label in AVAILABILITY.items() if getattr(person, key)
        )
        details = " — ".join(part for part in (skills, free, person.neighbourhood or "") if part)
        lines.append(f"{ctx.t.number(number)}. {person.first_name} — {details}")
    navigation = []
    if page > 0:
        navigation.append(Option("previous", ctx.t.pages[0]))
    if page + 1 < pages or (capped and len(results) == PAGE_SIZE):
        navigation.append(Option("next", ctx.t.pages[1]))
    rows = [navigation] if navigation else []
    rows.append([Option("new", ctx._("New search")), Option("close", ctx._("Close"))])
    return Prompt("\n".join(lines), rows)


async def handle_results(ctx: Context, value: str) -> Next:
    if value == "close":
        ctx.drop(SearchDraft)
        return END
    if value == "new":
        return SearchStep.SKILL
    draft = ctx.draft(SearchDraft)
    draft.page = max(draft.page + (1 if value == "next" else -1), 0)
    return SearchStep.RESULTS


FLOW = Flow(
    name="search",
    drafts=[SearchDraft],
    steps=[
        Step(SearchStep.COUNCIL, ask_council, on_choice=handle_council),
        Step(SearchStep.SKILL, ask_skill, on_choice=handle_skill, in_place=True),
        Step(
            SearchStep.SKILL_IN_CATEGORY,
            ask_skill_in_category,
            on_choice=handle_skill_in_category,
            in_place=True,
        ),
        Step(SearchStep.WHEN, ask_when, on_choice=handle_when),
        Step(SearchStep.PLACE, ask_place, on_choice=handle_place),
        Step(SearchStep.RESULTS, ask_results, on_choice=handle_results, in_place=True),
    ],
    commands=[
        Command(
            "search",
            start_search,
            N_("find residents in the talent directory"),
            roles=frozenset({Role.COORDINATOR}),
        )
    ],
)
