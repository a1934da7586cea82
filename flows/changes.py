"""Changing one part of what is being written, from its preview, and coming back to it.

Every preview (a call, a meeting, a consultation, an announcement) offers "Change". A flow
lists the parts of what it writes, each with the steps that ask it::

    PARTS = (
        Part("title", N_("The title"), (CallStep.TITLE,), now=lambda ctx: ...),
        Part("skills", N_("The skills"), (CallStep.SKILLS, CallStep.SKILL_CATEGORY)),
    )

and `menu` makes the step that asks which. The part's steps then run as they did the first
time, and the first one that leads out of them leads back to the preview instead (the engine
does that: `Context.change`). Nothing else is asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flows.engine import Context, Next, Option, Prompt, Step, StepName

CHANGE = "change"  # the preview's option that opens the menu
BACK = "back"


@dataclass(frozen=True)
class Part:
    """A part of what is being written: `steps` ask it (the first one starts it; the others
    follow from it, like a place's map location after its address)."""

    key: str
    label: str  # marked with N_()
    steps: tuple[StepName, ...]
    # What it is now, said before it is asked again, to copy and correct (a text part).
    now: Callable[[Context], str] | None = None
    # Whether it can be changed now (a neighbourhood only where the council has some).
    offered: Callable[[Context], bool] | None = None


def option(ctx: Context) -> Option:
    """The preview's button that opens the menu."""
    return Option(CHANGE, "✏️ " + ctx._("Change"))


async def start(ctx: Context, part: Part, preview: StepName) -> Next:
    """Ask `part` again, then come back to `preview`."""
    if part.now is not None and (now := part.now(ctx)):
        ctx.say(ctx._("Now: {value}").format(value=ctx._("“{text}”").format(text=now)))
    ctx.change(part.steps, preview)
    return part.steps[0]


def menu(name: StepName, preview: StepName, parts: Sequence[Part]) -> Step:
    """The step that asks which part to change (from the preview's "Change")."""
    by_key = {part.key: part for part in parts}
    if len(by_key) != len(parts):
        raise ValueError(f"{name}: two parts with the same key")

    async def ask(ctx: Context) -> Prompt:
        rows = [
            [Option(part.key, ctx._(part.label))]
            for part in parts
            if part.offered is None or part.offered(ctx)
        ]
        rows.append([Option(BACK, ctx.t.back)])
        return Prompt(ctx._("What would you like to change?"), rows)

    async def on_choice(ctx: Context, value: str) -> Next:
        part = by_key.get(value)
        if part is None:  # back
            return preview
        return await start(ctx, part, preview)

    return Step(name, ask, on_choice=on_choice)
