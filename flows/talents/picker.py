"""Picking skills from a catalogue, category by category, ticking as one goes.

Used by residents describing themselves and by coordinators describing a call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from flows.engine import Context, Option
from flows.talents.catalogue import category_label, skill_label
from storage.models import Skill

TICK = "✅ "
CATEGORY = "cat:"
DONE = "done"
BACK = "back"


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
    rows.append([Option(BACK, "◀ " + ctx._("Back"))])
    return rows


def chosen_names(ctx: Context, skills: Sequence[Skill], chosen: Collection[int]) -> str:
    return ", ".join(skill_label(skill, ctx.t) for skill in skills if skill.id in chosen)


def toggled(chosen: Collection[int], value: str) -> list[int]:
    return sorted(set(chosen) ^ {int(value)})
