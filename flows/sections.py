"""What a capability adds to the council's digest and to the dashboard's pages.

A capability declares these in its manifest (`Flow.digest`, `Flow.dashboard`); the digest
(flows/digest) and the dashboard (bot/dashboard) iterate what the registered capabilities
declare, and neither reads another capability's tables. A capability gives its figures and
its view of them; the dashboard keeps the rendering (templates, escaping), the sign-in, the
council and role checks and the forms' CSRF tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import Attachment
from flows.i18n import Translator
from storage.models import Council, Person, Role

if TYPE_CHECKING:
    from flows.engine import Flow


# --- the digest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """What a digest covers: (since, now]. Before the first digest, everything still open or
    coming up is news to the group."""

    since: datetime
    now: datetime
    first: bool


class News(Protocol):
    """What a capability found for a digest."""

    @property
    def newsworthy(self) -> bool:
        """Something happened: what is merely still open is not worth a message of its own."""
        ...


NewsT = TypeVar("NewsT", bound=News)


@dataclass(frozen=True)
class DigestSection(Generic[NewsT]):
    """A capability's part of the council's digest: `gather` what happened in the council in
    the period (and what is open or coming up now), `write` it as one block of lines in the
    council's language and time zone (none when there is nothing to show). Counts and titles
    only: the digest goes to a group. Blocks come by `order`, smaller first."""

    name: str
    order: int
    gather: Callable[[AsyncSession, Council, Period], Awaitable[NewsT]]
    write: Callable[[Translator, NewsT, str], list[str]]  # str: the council's time zone


def digest_sections(flows: Iterable[Flow]) -> list[DigestSection[Any]]:
    """The sections the capabilities declare, in the order the digest shows them."""
    found = [section for flow in flows for section in flow.digest]
    _unique("digest section", (section.name for section in found))
    return sorted(found, key=lambda section: section.order)


# --- the dashboard -------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One request to a section's page, already checked: signed in, the council open to the
    person, the section's roles held, a form's token right. What comes from the browser
    (`query`, `params`) is untrusted."""

    session: AsyncSession
    council: Council
    t: Translator
    person: Person  # who is signed in
    roles: frozenset[Role]  # what they hold in this council (an administrator may hold none)
    is_admin: bool
    query: Mapping[str, str]  # the address's query string
    params: Mapping[str, str] = field(default_factory=dict)  # the route's placeholders


def whole_number(value: str | None) -> int | None:
    """A number from the browser (a query value, a route's placeholder); None if it is not one."""
    try:
        return int(value) if value is not None and value != "" else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Card:
    title: str
    lines: Sequence[str] = ()


@dataclass(frozen=True)
class Page:
    """A section's page. By default, `cards` (or `empty` when there are none) under the
    section's label; a page with more to show names one of the dashboard's templates and
    gives it plain values (the template escapes them)."""

    cards: Sequence[Card] = ()
    empty: str = ""
    template: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Redirect:
    """After a form: show this address under the council's pages ("members?verified=3")."""

    to: str


# A page, a file (a chart), where to go after a form, or None: there is no such thing here.
Shown = Page | Attachment | Redirect | None
View = Callable[[Visit], Awaitable[Shown]]


@dataclass(frozen=True)
class Route:
    """Another address of a section, under its own and for the same roles: a file it shows
    ("{id:\\d+}/chart-{number:\\d+}.png") or a form it handles (method POST)."""

    path: str
    view: View
    method: str = "GET"


@dataclass(frozen=True)
class Figure:
    label: str  # marked with N_()
    value: int


@dataclass(frozen=True)
class DashboardSection:
    """A capability's page among a council's pages, at /dashboard/<council>/<name>, in the
    navigation by `order` for those who hold one of `roles`. `figures` are its counts on the
    council's overview, which every organiser sees."""

    name: str
    label: str  # marked with N_()
    roles: frozenset[Role]
    order: int
    view: View
    figures: Callable[[AsyncSession, Council], Awaitable[Sequence[Figure]]] | None = None
    routes: Sequence[Route] = ()


def dashboard_sections(flows: Iterable[Flow]) -> list[DashboardSection]:
    """The sections the capabilities declare, in the order the navigation shows them."""
    found = [section for flow in flows for section in flow.dashboard]
    _unique("dashboard section", (section.name for section in found))
    return sorted(found, key=lambda section: section.order)


def _unique(what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} declared twice")
        seen.add(name)
