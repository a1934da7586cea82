"""Steps are referred to by typed names, and the engine checks them all when it is built:
a step nobody defined fails at start, with one clear message, not as an apology later."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from flows.engine import END, Command, Context, Engine, Flow, Next, Prompt, Step, StepName
from flows.registry import FLOWS


class Errand(StepName):
    ASK = "errand.ask"
    THANK = "errand.thank"  # referred to below, defined by no flow


async def start(ctx: Context) -> Next:
    return Errand.ASK


async def ask(ctx: Context) -> Prompt:
    return Prompt("?")


async def handle(ctx: Context, text: str) -> Next:
    return Errand.THANK if text else END


DANGLING = Flow(
    name="errand",
    steps=[Step(Errand.ASK, ask, on_text=handle)],
    commands=[Command("errand", start, "errand")],
)


def test_the_flows_steps_all_resolve() -> None:
    engine = Engine(FLOWS, async_sessionmaker())
    assert "meetings.title" in engine.steps


def test_a_dangling_step_reference_fails_when_the_engine_is_built() -> None:
    with pytest.raises(ValueError, match=r"'errand\.thank' \(Errand\.THANK refers to it\)"):
        Engine([*FLOWS, DANGLING], async_sessionmaker())


def test_a_reference_to_a_flow_left_out_fails_too() -> None:
    """Onboarding offers the language step: without the language flow, it would dangle."""
    without_language = [flow for flow in FLOWS if flow.name != "language"]
    with pytest.raises(ValueError, match=r"'language\.choose'"):
        Engine(without_language, async_sessionmaker())


def test_a_step_defined_twice_fails() -> None:
    twice = Flow(name="twice", steps=[Step(Errand.ASK, ask), Step(Errand.THANK, ask)])
    again = Flow(name="again", steps=[Step(Errand.ASK, ask)])
    with pytest.raises(ValueError, match=r"'errand\.ask' defined twice"):
        Engine([twice, again], async_sessionmaker())
