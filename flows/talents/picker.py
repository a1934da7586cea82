"""Picking skills from a catalogue, category by category, ticking as one goes.

Used by residents describing themselves and by coordinators describing a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from flows.engine import Context, Next, Option, Prompt, Step, StepName
from flows.staff import StaffDraft
from flows.talents.catalogue import category_label, skill_label
from storage.models import Skill
from storage.queries import talents

TICK = "✅ "
CATEGORY = "cat:"
DONE = "done"
BACK = "back"


@dataclass
class SkillsDraft(StaffDraft):
    """The part of a staff task's draft the skill picker fills: the skills ticked, and the
    category open."""

    skills: list[int] = field(default_factory=list)
    category: str = ""


def category_rows(
    ctx: Context, skills: Sequence[Skill], chosen: Collection[int]
) -> list[list[Option]]:
    """One button per category (with how many are ticked in it), then Done."""
    rows: list[list[Option]] = []
    for category in dict.fromkeys(skill.category for skill in skills):
        ticked = sum(1 for skill in skills if skill.category == category and skill.id in chosen)
        label = category_label(category, ctx.t) + (f" ({ticked})" if ticked else "")
        rows.append([Option(CATEGORY + category, label)])
    rows.append([Option(DONE, TICK + ctx._("Done"))])
    return rows


def skill_rows(
    ctx: Context, skills: Sequence[Skill], category: str, chosen: Collection[int]
) -> list[list[Option]]:
    """The category's skills, ticked or not, then Back."""
    rows = [
        [Option(str(skill.id), (TICK if skill.id in chosen else "") + skill_label(skill, ctx.t))]
        for skill in skills
        if skill.category == category
    ]
    rows.append([Option(BACK, ctx.t.back)])
    return rows


def chosen_names(ctx: Context, skills: Sequence[Skill], chosen: Collection[int]) -> str:
    return ", ".join(skill_label(skill, ctx.t) for skill in skills if skill.id in chosen)


def toggled(chosen: Collection[int], value: str) -> list[int]:
    return sorted(set(chosen) ^ {int(value)})


def skill_steps(
    name: StepName,
    *,
    draft: type[SkillsDraft],
    category_step: StepName,
    question: str,
    on_done: Callable[[Context], Awaitable[Next]],
) -> tuple[Step, Step]:
    """A staff task's two skill-picking steps, redrawn in place: the council's categories
    (`name`), then one category's skills to tick (`category_step`). `question` is marked
    with N_() by the caller; Done hands over to `on_done`."""

    async def catalogue(ctx: Context) -> Sequence[Skill]:
        return await talents.skills(ctx.session, ctx.draft(draft).council_id)

    async def ask(ctx: Context) -> Prompt:
        skills = await catalogue(ctx)
        chosen = ctx.draft(draft).skills
        text = ctx._(question)
        if chosen:
            names = chosen_names(ctx, skills, chosen)
            text += "\n\n" + ctx._("Chosen: {skills}").format(skills=names)
        return Prompt(text, category_rows(ctx, skills, chosen))

    async def handle(ctx: Context, value: str) -> Next:
        if value.startswith(CATEGORY):
            ctx.draft(draft).category = value.removeprefix(CATEGORY)
            return category_step
        return await on_done(ctx)

    async def ask_category(ctx: Context) -> Prompt:
        picking = ctx.draft(draft)
        return Prompt(
            category_label(picking.category, ctx.t),
            skill_rows(ctx, await catalogue(ctx), picking.category, picking.skills),
        )

    async def handle_category(ctx: Context, value: str) -> Next:
        if value == BACK:
            return name
        picking = ctx.draft(draft)
        picking.skills = toggled(picking.skills, value)
        return category_step

    return (
        Step(name, ask, on_choice=handle, in_place=True),
        Step(category_step, ask_category, on_choice=handle_category, in_place=True),
    )
