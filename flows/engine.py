"""The conversation runner: an inbound event in, replies out, state in the database.

A flow is a set of steps. A step asks (a text and, usually, buttons) and
handles the answer, returning the name of the next step or ``END``. The
runner stores which step a chat is on, so a restart resumes every
conversation where it was. Buttons carry ``c:<prompt>:<value>``: the prompt
number says which question they answer (an older one has expired) and the
value must be one the step offered (anything else was forged).
"""

from __future__ import annotations

import base64
import enum
import logging
import sys
import types
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from flows.buttons import Button, decode
from flows.drafts import D, Draft
from flows.i18n import Translator, negotiate

if TYPE_CHECKING:
    from flows.broadcasts.report import Price
    from flows.sections import DashboardSection, DigestSection
    from flows.spreadsheet import Column
from flows.unit import Unit
from storage.db import scrub, session_scope
from storage.models import Conversation, Council, Person, Role
from storage.queries import people

log = logging.getLogger(__name__)

KEYWORD_PUNCTUATION: Final = " \t\n.!?¡¿\u061f,;:'\"«»()-\u2013\u2014"
CONVERSATION_PREFIX: Final = "c"


# --- What comes in and what goes out -------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """One thing a person did, whatever the channel."""

    channel: str
    sender_id: str
    chat_id: str
    private: bool = True
    text: str | None = None
    command: str | None = None  # lower-case, without the slash
    argument: str = ""
    choice: str | None = None  # raw button data: untrusted
    language_code: str | None = None
    first_name: str = ""
    username: str | None = None
    event_id: int | None = None  # for deduplication of re-delivered events
    blocked: bool | None = None  # the person blocked (True) or unblocked (False) the bot
    location: tuple[float, float] | None = None  # a place shared on the map: latitude, longitude


class Event(NamedTuple):
    """An inbound event and the channel's own bookkeeping for it (see `AlongHook`)."""

    inbound: Inbound
    along: AlongHook | None = None


class FlowError(Exception):
    """A flow raised on the event at `index` of a unit (the cause is chained)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass(frozen=True)
class Choice:
    label: str
    data: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str
    kind: str = "document"  # or "photo"


class NoticeKind(enum.StrEnum):
    """What a message sent to someone who is not waiting for it is about."""

    MEETING = "meeting"  # an invitation to a meeting
    MEETING_NEWS = "meeting_news"  # a meeting moved, was cancelled, or a seat freed up
    REMINDER = "reminder"
    CALL = "call"  # a call for talents
    CONSULTATION = "consultation"
    RESULTS = "results"
    NEWS = "news"  # anything else from the council


@dataclass(frozen=True)
class Notice:
    """A message in one line, in the recipient's language: what a channel shows when it must
    announce a message before it can show it (a WhatsApp template outside the 24-hour window,
    a notification). Every field is already written for the reader (dates formatted)."""

    kind: NoticeKind
    locale: str
    council: str = ""
    title: str = ""
    when: str = ""
    place: str = ""


@dataclass(frozen=True)
class Reply:
    text: str
    choices: tuple[tuple[Choice, ...], ...] = ()
    attachment: Attachment | None = None
    replace: bool = False  # redraw the message whose button was tapped, rather than add one
    notice: Notice | None = None  # for a message that reaches someone who is not waiting
    asks_location: bool = False  # see Prompt.asks_location

    def kept(self) -> dict[str, Any]:
        """The reply as JSON, to be sent again if its event is delivered again (a new message:
        the tapped one may be gone; no notice: its reader is waiting for it)."""
        kept: dict[str, Any] = {"text": self.text}
        if self.choices:
            kept["choices"] = [[[c.label, c.data] for c in row] for row in self.choices]
        if self.attachment is not None:
            kept["attachment"] = {
                "filename": self.attachment.filename,
                "content": base64.b64encode(self.attachment.content).decode(),
                "mime_type": self.attachment.mime_type,
                "kind": self.attachment.kind,
            }
        return kept

    @classmethod
    def from_kept(cls, kept: dict[str, Any]) -> Reply:
        file = kept.get("attachment")
        return cls(
            text=kept["text"],
            choices=tuple(
                tuple(Choice(label, data) for label, data in row) for row in kept.get("choices", ())
            ),
            attachment=None
            if file is None
            else Attachment(
                file["filename"], base64.b64decode(file["content"]), file["mime_type"], file["kind"]
            ),
        )


@dataclass
class Outcome:
    """What the channel should do: send replies, answer the tap, tidy the tapped message."""

    replies: list[Reply] = field(default_factory=list)
    toast: str | None = None  # a short notice shown for a button tap
    clear_buttons: bool = False  # take the buttons off the message that was tapped
    duplicate: bool = False
    rtl: bool = False
    locale: str | None = None  # the language the replies are written in
    erased: bool = False  # the person was forgotten: the channel keeps nothing of this either
    member: bool = False  # the sender is a person (has consented) once the event is handled
    # What was said is not to be kept beyond the question in hand (an anonymous ballot's
    # answers): a channel that keeps the conversation lets it go once the question is past.
    off_the_record: bool = False
    # What was typed was not taken (too long): a channel that can gives it back to the box.
    given_back: bool = False


# --- How flows are written -----------------------------------------------------------------


class StepName(enum.StrEnum):
    """Base of a flow's step names, one enum per flow (like aiogram's StatesGroup): a step is
    referred to by a member, so a typo fails at import, and a member without its step fails
    when the engine is built."""


class Control(StepName):
    STAY = "__stay__"  # keep the current step without asking again


END: Final[StepName | None] = None
STAY: Final = Control.STAY


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class Prompt:
    """What a step asks: a text and rows of options."""

    text: str
    rows: Sequence[Sequence[Option]] = ()
    attachment: Attachment | None = None
    # A place on the map is asked: each channel says (or offers) how to share one.
    asks_location: bool = False


Next = StepName | None
StepAsk = Callable[["Context"], Awaitable[Prompt]]
StepChoice = Callable[["Context", str], Awaitable[Next]]
StepText = Callable[["Context", str], Awaitable[Next]]
StepLocation = Callable[["Context", float, float], Awaitable[Next]]
CommandHandler = Callable[["Context"], Awaitable[Next]]


@dataclass(frozen=True)
class Step:
    name: StepName
    ask: StepAsk
    on_choice: StepChoice | None = None
    on_text: StepText | None = None
    max_text_length: int = 500
    in_place: bool = False  # a tap that leads here redraws the tapped message (toggles, pages)
    on_location: StepLocation | None = None  # a place shared on the map


@dataclass(frozen=True)
class Command:
    name: str
    run: CommandHandler
    description: str  # marked with N_(), shown in /help and the client's menu
    roles: frozenset[Role] = frozenset()  # empty: everyone; else one of these in a council
    needs_consent: bool = True
    in_menu: bool = True
    # Whole messages that mean this command in any state, never taken as an answer ("STOP").
    keywords: frozenset[str] = frozenset()
    # Typed words for channels without a command menu (WhatsApp): "aide" means /help there.
    words: frozenset[str] = frozenset()


ReachabilityHook = Callable[[AsyncSession, Person, bool], Awaitable[None]]
# A channel's own bookkeeping for an event, in the event's transaction, once its outcome is
# known (WhatsApp's window; the web chat's conversation rows).
AlongHook = Callable[[AsyncSession, "Outcome"], Awaitable[None]]
# A person joined a council: what of the council's current business they are given now.
JoinHook = Callable[[AsyncSession, Person, Council], Awaitable[list["Reply"]]]
B = TypeVar("B", bound=Button)


@dataclass(frozen=True)
class ConversationChoice(Button, prefix=CONVERSATION_PREFIX, open_ended=True):
    """A button of the current question: which prompt it belongs to (an older one has
    expired) and the value tapped (which must be one the step offered)."""

    prompt: int
    value: str

    def __post_init__(self) -> None:
        if not self.value:
            raise ValueError("a choice without a value")


@dataclass(frozen=True)
class Action(Generic[B]):
    """A button outside any conversation (on a broadcast, a report): its typed data, packed
    as ``<prefix>:<field>:…``, and what a tap does.

    The engine decodes the data (anything it did not issue is refused before the handler);
    the handler still checks the sender's rights: the ids come from the client.
    """

    button: type[B]
    run: Callable[[Context, B], Awaitable[None]]

    @property
    def prefix(self) -> str:
        return self.button.prefix


@dataclass(frozen=True)
class Job:
    """Scheduled work: due rows of our tables, claimed in one transaction, turned into
    outbox messages in the same one. Returns how many things it did."""

    name: str
    every: timedelta
    run: Callable[[AsyncSession, datetime], Awaitable[int]]


@dataclass(frozen=True)
class GroupCommand:
    """A command that works in a group chat (registering the council's group). It gets the
    event and a transaction, and returns the short answer to post there (None: say nothing)."""

    name: str
    run: Callable[[AsyncSession, Inbound, Translator, bool], Awaitable[str | None]]


# What a capability keeps about a person, as plain JSON-ready data for /mydata.
Collect = Callable[[AsyncSession, Person], Awaitable[Any]]
# The same in one line the person can read, in their language; None when there is nothing.
Summarise = Callable[[Translator, Any], str | None]


@dataclass(frozen=True)
class PersonalData:
    """A capability's declaration of what it keeps about a person: shown by /mydata under
    `key`, held in `tables` (every table that points to a person is declared by one
    capability: a test walks the models). What /forget does with it is said by the tables'
    foreign keys (deleted with the person, or kept pointing to nobody), and by `erase` for
    what points to them otherwise (run before the person is deleted)."""

    key: str
    tables: tuple[str, ...]  # table names
    collect: Collect
    summary: Summarise | None = None
    erase: Callable[[AsyncSession, Person], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Export:
    """A table of a council's records a capability gives: `coupdepouce export KIND` and the
    dashboard's downloads. `records` are nested where they have parts (JSON shows them so),
    with machine keys and values (datetimes for moments); `rows` flattens them to one row
    each for a spreadsheet (None: they are flat already); `columns` are the spreadsheet's,
    with translatable headers and labels (none: the rows' keys, as they are)."""

    kind: str
    title: str  # marked with N_(), shown in the dashboard
    roles: frozenset[Role]  # who may download it from the dashboard
    records: Callable[[AsyncSession, Council], Awaitable[list[dict[str, Any]]]]
    rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
    columns: Sequence[Column] = ()


def deleted(*results: object) -> int:
    """How many rows DELETE statements removed, for a retention rule's count."""
    return sum(int(getattr(result, "rowcount", 0) or 0) for result in results)


@dataclass(frozen=True)
class Retention:
    """How long a capability keeps something, and how it goes: `purge` deletes (or cuts
    loose) what is older than the cutoff it is given, and says how many rows went."""

    what: str  # said in the log and the README: "processed update ids"
    keep: timedelta
    purge: Callable[[AsyncSession, datetime], Awaitable[int]]


@dataclass(frozen=True)
class Flow:
    """One capability: its conversation (steps, commands, buttons), its scheduled jobs, what
    it keeps about people, and what it adds to the digest and the dashboard."""

    name: str
    steps: Sequence[Step] = ()
    commands: Sequence[Command] = ()
    on_reachability: ReachabilityHook | None = None  # the person blocked or unblocked the bot
    on_join: JoinHook | None = None  # the person just joined a council
    actions: Sequence[Action[Any]] = ()
    jobs: Sequence[Job] = ()
    group_commands: Sequence[GroupCommand] = ()
    personal_data: Sequence[PersonalData] = ()
    retention: Sequence[Retention] = ()
    exports: Sequence[Export] = ()
    drafts: Sequence[type[Draft]] = ()  # what its conversations keep while they go on
    digest: Sequence[DigestSection[Any]] = ()  # its part of the council's digest
    dashboard: Sequence[DashboardSection] = ()  # its pages among the council's pages


@dataclass
class ChatDraft(Draft, key="chat"):
    """What the runner keeps for any conversation: the language chosen before consenting,
    the step to go back to after a detour (changing language), and the part of a preview
    being changed (see `Context.change`)."""

    locale: str | None = None
    return_to: str | None = None
    changing: list[str] = field(default_factory=list)  # the steps of the part being changed
    preview: str | None = None  # where the conversation goes back once they are answered


@dataclass(frozen=True)
class FlowConfig:
    """The few settings flows need, passed in by the application."""

    admin_ids: frozenset[str] = frozenset()
    bot_username: str | None = None
    public_url: str | None = None  # where the web pages are reached, for links in messages
    dashboard_link_minutes: int = 10
    template_price: Price | None = None  # what a WhatsApp template costs, for previews


@dataclass
class Context:
    """Everything a step needs for one inbound event."""

    session: AsyncSession
    inbound: Inbound
    conversation: Conversation
    person: Person | None
    t: Translator
    config: FlowConfig
    engine: Engine
    replies: list[Reply] = field(default_factory=list)
    drop_conversation: bool = False  # set when the conversation's row must go (erasure)
    toast: str | None = None  # a short notice for the tapped button
    tapped: bool = False  # a button of the current question was tapped: its message can be redrawn
    memo: dict[str, Any] = field(default_factory=dict)  # what a step loaded, for the next one
    off_the_record: bool = False  # see Outcome.off_the_record
    given_back: bool = False  # see Outcome.given_back
    # The drafts read in this event (None: dropped), written back when it has been handled.
    drafts: dict[type[Draft], Draft | None] = field(default_factory=dict)
    # The unit of work, where what is read for all its events is found (None: read it here).
    unit: Unit | None = None

    def _(self, message: str) -> str:
        return self.t._(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.t.ngettext(singular, plural, n)

    def say(self, text: str, attachment: Attachment | None = None) -> None:
        self.replies.append(Reply(text=text, attachment=attachment))

    def draft(self, kind: type[D]) -> D:
        """The conversation's draft of this kind (a fresh one if it has none); changes to it
        are kept when the event has been handled."""
        if kind.key not in self.engine.drafts:
            raise LookupError(f"{kind.__name__} is not declared by any flow")
        found = self.drafts.get(kind)
        if found is None:
            kept = self.conversation.data.get(kind.key or "")
            found = kind() if kind in self.drafts else kind.load(kept)
            self.drafts[kind] = found
        assert isinstance(found, kind)
        return found

    def drop(self, *kinds: type[Draft]) -> None:
        """The conversation is done with these drafts: they are not kept."""
        for kind in kinds:
            self.drafts[kind] = None

    def keep_drafts(self) -> None:
        """Write the drafts read in this event back into the conversation (a new dict, so the
        change is saved)."""
        data = dict(self.conversation.data)
        for kind, draft in self.drafts.items():
            assert kind.key is not None
            if draft is None or draft == kind():  # a fresh draft is as good as none
                data.pop(kind.key, None)
            else:
                data[kind.key] = draft.dump()
        if data != self.conversation.data:
            self.conversation.data = data

    def drop_all(self) -> None:
        """Keep nothing of this conversation's drafts."""
        self.drop(*self.engine.drafts.values())

    def change(self, steps: Sequence[StepName], preview: StepName) -> None:
        """One part of what is being written is asked again from its preview: its `steps`
        run as they did the first time, and as soon as one of them leads out of them, the
        conversation goes back to `preview` instead (`Engine.go`)."""
        chat = self.draft(ChatDraft)
        chat.changing = [step.value for step in steps]
        chat.preview = preview.value

    @property
    def changing(self) -> bool:
        """A part of a preview is being changed (a step may then say less, or go back)."""
        return bool(self.draft(ChatDraft).changing)

    def set_locale(self, locale: str) -> None:
        self.t = Translator(locale)

    async def roles(self) -> set[tuple[Council, Role]]:
        """The staff roles this sender holds, per council (admins hold none: they are above)."""
        sender = (self.inbound.channel, self.inbound.sender_id)
        if self.unit is not None:  # read for every sender of the unit at once
            return set(await self.unit.roles_of(sender))
        return await people.roles_of(self.session, *sender)

    @property
    def is_admin(self) -> bool:
        return (
            self.inbound.channel == "telegram" and self.inbound.sender_id in self.config.admin_ids
        )


# --- The runner ----------------------------------------------------------------------------


class Engine:
    """Runs flows for inbound events; one database transaction per event."""

    def __init__(
        self,
        flows: Sequence[Flow],
        sessions: async_sessionmaker[AsyncSession],
        config: FlowConfig | None = None,
    ) -> None:
        self.sessions = sessions
        self.config = config or FlowConfig()
        self.steps: dict[str, Step] = {}
        self.commands: dict[str, Command] = {}
        self.keywords: dict[str, Command] = {}
        self.command_words: dict[str, str] = {}  # a typed word → the command it means
        self.reachability_hooks = [flow.on_reachability for flow in flows if flow.on_reachability]
        self.join_hooks = [flow.on_join for flow in flows if flow.on_join]
        self.actions: dict[str, Action[Any]] = {}
        self.buttons: dict[str, type[Button]] = {CONVERSATION_PREFIX: ConversationChoice}
        self.group_commands = {c.name: c for flow in flows for c in flow.group_commands}
        self.personal_data: dict[str, PersonalData] = {}
        self.drafts: dict[str, type[Draft]] = {}
        kinds: list[type[Draft]] = [ChatDraft, *(kind for flow in flows for kind in flow.drafts)]
        for kind in kinds:
            kind.check()
            assert kind.key is not None
            if self.drafts.setdefault(kind.key, kind) is not kind:
                raise ValueError(f"draft key {kind.key!r} used twice")
        for data in (data for flow in flows for data in flow.personal_data):
            if data.key in self.personal_data:
                raise ValueError(f"personal data {data.key!r} declared twice")
            self.personal_data[data.key] = data
        for flow in flows:
            for step in flow.steps:
                if step.name in self.steps:
                    raise ValueError(f"step {step.name.value!r} defined twice")
                self.steps[step.name.value] = step
            for command in flow.commands:
                if command.name in self.commands:
                    raise ValueError(f"command /{command.name} defined twice")
                self.commands[command.name] = command
                for keyword in command.keywords:
                    self.keywords[normalise_keyword(keyword)] = command
                # A staff command is typed with its slash; a resident's also as a bare word.
                words = command.words if command.roles else {command.name, *command.words}
                for word in words:
                    folded = normalise_keyword(word)
                    if not folded or self.command_words.setdefault(folded, command.name) != (
                        command.name
                    ):
                        raise ValueError(f"the word {word!r} means no command, or two")
            for action in flow.actions:
                if action.prefix in self.buttons:
                    raise ValueError(f"button prefix {action.prefix!r} used twice")
                action.button.decoders()  # a field of a type buttons cannot carry fails now
                self.actions[action.prefix] = action
                self.buttons[action.prefix] = action.button
        self._check_steps(flows)

    def _check_steps(self, flows: Sequence[Flow]) -> None:
        """Every step a flow can name is defined: the members of the step enums its steps
        belong to, and of those its modules refer to (another flow's)."""
        kinds = {type(step.name) for flow in flows for step in flow.steps}
        for module in {_module_of(handler) for flow in flows for handler in _handlers(flow)}:
            kinds |= {
                value
                for value in vars(module).values()
                if isinstance(value, type) and issubclass(value, StepName) and value is not StepName
            }
        kinds.discard(Control)
        for kind in sorted(kinds, key=lambda k: k.__qualname__):
            for member in kind:
                if member.value not in self.steps:
                    raise ValueError(
                        f"no flow defines the step {member.value!r} "
                        f"({kind.__qualname__}.{member.name} refers to it)"
                    )

    def _drop_unknown_data(self, conversation: Conversation) -> None:
        """A conversation kept by an older version, in a shape no draft reads: its data goes,
        and the conversation ends (the next message or tap is answered as if none were going
        on, kindly) rather than going on with half of what it had gathered."""
        unknown = set(conversation.data) - set(self.drafts)
        if not unknown:
            return
        log.info("dropped a conversation's data of an older shape: %s", sorted(unknown)[:10])
        conversation.data = {k: v for k, v in conversation.data.items() if k in self.drafts}
        conversation.step = None
        conversation.options = []

    def translator_for(self, inbound: Inbound) -> Translator:
        """A translator from the client's language alone (for apologies when all else failed)."""
        return Translator(negotiate(inbound.language_code))

    async def handle(self, inbound: Inbound, *, along: AlongHook | None = None) -> Outcome:
        """Process one inbound event; the transaction commits before anything is sent. A
        flow's failure is raised (the channel answers with `apology`).

        `along` is the channel's own bookkeeping for this event (WhatsApp's window), done in
        the same transaction: it is kept exactly when the event is."""
        try:
            return (await self._attempt([Event(inbound, along)]))[0]
        except FlowError as failed:
            raise (failed.__cause__ or failed) from None

    async def handle_batch(self, events: Sequence[Event], *, replay: bool = False) -> list[Outcome]:
        """Process events that came together (a batch of updates) as one unit of work: one
        transaction, committed before anything is sent; an outcome per event, in order.

        A flow that fails spoils only its own event: the unit's transaction is rolled back,
        the events before it run again as a unit, it runs alone (and gets the apology if it
        fails again: not what another event of the unit did, then, but its own fault), and
        those after it go on as a unit. A unit that fails in no flow (writing what it changed)
        runs again event by event. When the database is out of reach, nothing was kept: the
        error is raised, for the caller to try again later.

        With `replay`, what each event answered is kept for a while with its id: an event
        delivered again (the process stopped after the commit, before the messenger learnt
        the event was handled) is not handled again, and its outcome, marked `duplicate`,
        carries the same replies, to be sent again."""
        outcomes: list[Outcome] = []
        rest = list(events)
        while rest:
            try:
                return outcomes + await self._attempt(rest, replay)
            except Exception as error:
                cause = error.__cause__ if isinstance(error, FlowError) else error
                failure = cause if isinstance(cause, Exception) else error
                if await self._out_of_reach(failure):
                    raise failure from None  # nothing was kept: the caller tries again later
                spoilt = error.index if isinstance(error, FlowError) else None
            if len(rest) == 1:
                log.error("a flow failed, or what it changed could not be kept", exc_info=failure)
                outcomes.append(Outcome(replies=[apology(rest[0].inbound)]))
                return outcomes
            log.info("a unit of %d events failed: running again without %s", len(rest), spoilt)
            if spoilt is None:  # each alone, then
                for event in rest:
                    outcomes += await self.handle_batch([event], replay=replay)
                return outcomes
            outcomes += await self.handle_batch(rest[:spoilt], replay=replay)
            outcomes += await self.handle_batch([rest[spoilt]], replay=replay)
            rest = rest[spoilt + 1 :]
        return outcomes

    async def _out_of_reach(self, error: Exception) -> bool:
        """Whether the database could not be used at all (down, restarting, locked too long),
        rather than refusing what an event did: it is asked something trivial."""
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        try:
            async with session_scope(self.sessions) as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return True
        return False

    async def _attempt(self, events: Sequence[Event], replay: bool = False) -> list[Outcome]:
        """One transaction for the events. One whose database connection turned out dead (the
        server restarted; connections are not pinged before use) is run again once, on a
        fresh one."""
        try:
            return await self._unit(events, replay)
        except (DBAPIError, FlowError) as error:
            lost = error.__cause__ if isinstance(error, FlowError) else error
            if not (isinstance(lost, DBAPIError) and lost.connection_invalidated):
                raise
            log.warning("the database connection was lost; running the events again")
            return await self._unit(events, replay)

    async def _unit(self, events: Sequence[Event], replay: bool) -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with session_scope(self.sessions) as session:
            unit = Unit(session)
            ids = [(e.inbound.channel, e.inbound.event_id) for e in events if e.inbound.event_id]
            fresh = await unit.first_times((channel, int(id_)) for channel, id_ in ids)
            private = [e.inbound for e in events if e.inbound.private]
            await unit.load(
                [(i.channel, i.chat_id) for i in private if i.blocked is None],
                [(i.channel, i.sender_id) for i in private],
            )
            again = set(ids) - fresh
            kept = await unit.kept_replies(again) if replay and again else {}
            handled: set[tuple[str, str]] = set()  # senders with an event handled in the unit
            for index, (inbound, along) in enumerate(events):
                key = (inbound.channel, inbound.event_id or 0)
                if inbound.event_id and key not in fresh:
                    replies = [Reply.from_kept(reply) for reply in kept.get(key, ())]
                    outcomes.append(Outcome(replies=replies, duplicate=True))
                    continue
                fresh.discard(key)  # one run per id
                sender = (inbound.channel, inbound.sender_id)
                try:
                    if not inbound.private:
                        outcomes.append(await self._in_group(session, inbound))
                    elif inbound.blocked is not None:
                        await self._on_reachability(unit, inbound, reachable=not inbound.blocked)
                        outcomes.append(Outcome())
                    else:
                        outcomes.append(await self._run(unit, inbound, along, sender in handled))
                except Exception as error:
                    raise FlowError(index) from error
                handled.add(sender)
            await unit.write()
            if replay:
                await unit.keep_replies(
                    (event.inbound.channel, event_id, event.inbound.chat_id, kept_replies)
                    for event, outcome in zip(events, outcomes, strict=True)
                    if (event_id := event.inbound.event_id)
                    and not outcome.duplicate
                    and not outcome.erased  # nothing is kept of someone just forgotten
                    and (kept_replies := [reply.kept() for reply in outcome.replies])
                )
        if any(outcome.erased for outcome in outcomes):  # committed: the files keep no copy
            bind = session.bind
            if isinstance(bind, AsyncEngine):
                await scrub(bind)
        return outcomes

    async def _run(
        self, unit: Unit, inbound: Inbound, along: AlongHook | None, again: bool
    ) -> Outcome:
        """One private event in the unit; `again` when its sender had one before it."""
        session = unit.session
        chat = (inbound.channel, inbound.chat_id)
        sender = (inbound.channel, inbound.sender_id)
        conversation = unit.conversations[chat].conversation
        self._drop_unknown_data(conversation)
        person = unit.persons[sender]
        if person is not None and conversation.person_id != person.id:
            conversation.person_id = person.id
        if person is not None:
            unit.saw(person, SEEN_EVERY)
        ctx = Context(
            session=session,
            inbound=inbound,
            conversation=conversation,
            person=person,
            t=Translator(_locale_of(person, conversation, inbound)),
            config=self.config,
            engine=self,
            unit=None if again else unit,
        )
        outcome = Outcome()
        await self._dispatch(ctx, outcome)
        ctx.keep_drafts()
        outcome.replies = ctx.replies
        outcome.rtl = ctx.t.rtl
        outcome.locale = ctx.t.locale
        outcome.toast = ctx.toast or outcome.toast
        outcome.erased = ctx.drop_conversation
        outcome.member = ctx.person is not None
        outcome.off_the_record = ctx.off_the_record
        outcome.given_back = ctx.given_back
        if along is not None:
            await along(session, outcome)
        unit.persons[sender] = ctx.person
        if ctx.drop_conversation:
            unit.drop(chat)
        return outcome

    async def joined(self, session: AsyncSession, person: Person, council: Council) -> list[Reply]:
        """A person joined a council: the invitations still open to every member, for them."""
        replies: list[Reply] = []
        for hook in self.join_hooks:
            replies += await hook(session, person, council)
        return replies

    async def _on_reachability(self, unit: Unit, inbound: Inbound, reachable: bool) -> None:
        person = unit.persons[(inbound.channel, inbound.sender_id)]
        if person is None:
            return
        for hook in self.reachability_hooks:
            await hook(unit.session, person, reachable)

    async def _in_group(self, session: AsyncSession, inbound: Inbound) -> Outcome:
        """In a group the bot answers only its commands, briefly, and stores nothing but
        what a group command records (the council's group, registered by a coordinator)."""
        if inbound.command is None:
            return Outcome()
        t = Translator(negotiate(inbound.language_code))
        group_command = self.group_commands.get(inbound.command)
        if group_command is not None:
            is_admin = inbound.channel == "telegram" and inbound.sender_id in self.config.admin_ids
            answer = await group_command.run(session, inbound, t, is_admin)
            return Outcome(replies=[Reply(answer)] if answer else [])
        if inbound.command in self.commands:
            text = t._("I work in a private chat, to keep your answers private.")
            if self.config.bot_username:
                text += f"\nhttps://t.me/{self.config.bot_username}"
            return Outcome(replies=[Reply(text)])
        return Outcome()

    async def _dispatch(self, ctx: Context, outcome: Outcome) -> None:
        inbound = ctx.inbound
        keyword = self.keywords.get(normalise_keyword(inbound.text)) if inbound.text else None
        if keyword is not None:
            await self._on_command(ctx, keyword.name)
        elif inbound.command is not None:
            await self._on_command(ctx, inbound.command)
        elif inbound.choice is not None:
            await self._on_choice(ctx, inbound.choice, outcome)
        elif inbound.text is not None:
            await self._on_text(ctx, inbound.text)
        elif inbound.location is not None and self._step_takes_location(ctx):
            step = self.steps[ctx.conversation.step or ""]
            assert step.on_location is not None
            await self.go(ctx, await step.on_location(ctx, *inbound.location), answered=True)
        else:
            ctx.say(ctx._("I can only read text and button taps. Send /help to see what I can do."))

    async def _on_command(self, ctx: Context, name: str) -> None:
        command = self.commands.get(name)
        if command is None:
            ctx.say(ctx._("I don't know this command. Send /help to see what I can do."))
            return
        if command.needs_consent and ctx.person is None:
            ctx.say(ctx._("First, let's get you started: send /start."))
            return
        if command.roles and not ctx.is_admin:
            held = {role for _council, role in await ctx.roles()}
            if not held & command.roles:
                ctx.say(ctx._("This command is for council coordinators and organisers."))
                return
        await self.go(ctx, await command.run(ctx))

    def decode(self, raw: str) -> Button | None:
        """The button a client's data stands for; None for anything we did not issue."""
        return decode(raw, self.buttons)

    async def _on_choice(self, ctx: Context, raw: str, outcome: Outcome) -> None:
        button = self.decode(raw)
        if button is None:
            log.info("ignored a button that was never issued: %r", raw[:80])
            outcome.toast = ctx._("Sorry, this button does not work.")
            return
        if not isinstance(button, ConversationChoice):
            if ctx.person is None:
                outcome.toast = ctx._("First, let's get you started: send /start.")
                return
            await self.actions[button.prefix].run(ctx, button)
            return
        prompt, value = button.prompt, button.value
        step = self.steps.get(ctx.conversation.step or "")
        if step is None or prompt != ctx.conversation.prompt:
            outcome.toast = ctx._("This button has expired.")
            outcome.clear_buttons = True
            if step is not None:
                ctx.say(ctx._("That button belongs to an earlier question. Here is where we are:"))
                await self.ask(ctx, step)
            return
        if value not in ctx.conversation.options or step.on_choice is None:
            log.info("ignored a value that was never offered at %s: %r", step.name, value[:40])
            outcome.toast = ctx._("Sorry, this button does not work.")
            return
        ctx.tapped = True
        await self.go(ctx, await step.on_choice(ctx, value), answered=True)
        outcome.clear_buttons = not any(reply.replace for reply in ctx.replies)

    def _step_takes_location(self, ctx: Context) -> bool:
        step = self.steps.get(ctx.conversation.step or "")
        return step is not None and step.on_location is not None

    async def _on_text(self, ctx: Context, text: str) -> None:
        step = self.steps.get(ctx.conversation.step or "")
        if step is None:
            if ctx.person is None:
                ctx.say(ctx._("Hello! Send /start to join your neighbourhood council."))
            else:
                ctx.say(ctx._("I mostly work with buttons. Send /help to see what I can do."))
            return
        if step.on_text is None:
            ctx.say(ctx._("Please answer with the buttons below."))
            await self.ask(ctx, step)
            return
        if len(text) > step.max_text_length:
            # Not taken: said how long it may be, the question again, and on a channel that
            # can, what was typed back where it was typed, to shorten rather than rewrite.
            ctx.say(
                ctx.ngettext(
                    "That is {count} character long, for {limit} at most.",
                    "That is {count} characters long, for {limit} at most.",
                    len(text),
                ).format(count=ctx.t.number(len(text)), limit=ctx.t.number(step.max_text_length))
            )
            ctx.given_back = True
            await self.ask(ctx, step)
            return
        await self.go(ctx, await step.on_text(ctx, text.strip()), answered=True)

    async def go(self, ctx: Context, next_step: Next, answered: bool = False) -> None:
        """Move the conversation to ``next_step`` and ask it; END clears the step.
        `answered`: the current step was answered (else a command or a button outside the
        conversation moves it, and leaves behind any part of a preview being changed)."""
        if next_step == STAY:
            return
        if answered:
            next_step = self._after_change(ctx, next_step)
        else:
            self._leave_change(ctx)
        if next_step is None:
            ctx.conversation.step = None
            ctx.conversation.options = []
            return
        await self.ask(ctx, self.steps[next_step])

    def _after_change(self, ctx: Context, next_step: Next) -> Next:
        """While a part of a preview is changed, a step that leads out of the part leads
        back to the preview; an end (cancelling) ends it."""
        chat = ctx.draft(ChatDraft)
        if not chat.changing or (next_step is not None and next_step.value in chat.changing):
            return next_step
        preview = chat.preview
        self._leave_change(ctx)
        if next_step is None or preview is None:
            return next_step
        return self.steps[preview].name

    @staticmethod
    def _leave_change(ctx: Context) -> None:
        """Whatever part was being changed is left behind."""
        chat = ctx.draft(ChatDraft)
        if chat.changing or chat.preview:
            chat.changing, chat.preview = [], None

    async def ask(self, ctx: Context, step: Step) -> None:
        """Ask a step's question with a fresh prompt number: older buttons expire."""
        prompt = await step.ask(ctx)
        number = (ctx.conversation.prompt or 0) + 1
        choices = tuple(
            tuple(Choice(o.label, ConversationChoice(number, o.value).pack()) for o in row)
            for row in prompt.rows
        )
        ctx.conversation.step = step.name.value
        ctx.conversation.prompt = number
        ctx.conversation.options = [option.value for row in prompt.rows for option in row]
        replace = ctx.tapped and step.in_place and not ctx.replies and prompt.attachment is None
        ctx.tapped = False
        ctx.replies.append(
            Reply(
                prompt.text,
                choices,
                prompt.attachment,
                replace=replace,
                asks_location=prompt.asks_location,
            )
        )


SEEN_EVERY = timedelta(days=1)  # how often a person's last visit is written, at most


def _handlers(flow: Flow) -> list[Callable[..., Any]]:
    """The functions a flow runs (their modules are where its step references are)."""
    found: list[Callable[..., Any]] = [command.run for command in flow.commands]
    found += [action.run for action in flow.actions]
    for step in flow.steps:
        found += [f for f in (step.ask, step.on_choice, step.on_text, step.on_location) if f]
    return found


def _module_of(handler: Callable[..., Any]) -> types.ModuleType:
    return sys.modules[handler.__module__]


def normalise_keyword(text: str) -> str:
    """Fold case, accents and surrounding punctuation: 'Arrêt !' → 'arret'."""
    if len(text) > 40:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.strip(KEYWORD_PUNCTUATION)


def apology(inbound: Inbound) -> Reply:
    """What a person reads when something failed on our side."""
    t = Translator(negotiate(inbound.language_code))
    return Reply(t._("Sorry, something went wrong on our side. Please try again in a moment."))


def _locale_of(person: Person | None, conversation: Conversation, inbound: Inbound) -> str:
    if person is not None:
        return person.locale
    chosen = ChatDraft.load(conversation.data.get(ChatDraft.key or "")).locale
    return chosen or negotiate(inbound.language_code)
