"""A unit of work: the events that came together (a `getUpdates` batch, webhook calls a few
milliseconds apart), handled in one transaction.

What every event needs is read for the whole unit at once, one statement each: which events
are new (their ids recorded by the same statement), the chats' conversations, the senders'
persons, and, when a flow first asks, the senders' staff roles. The flows then run one
event after another; what the unit changed of the conversations and of when people were
last seen, and what each event answered (kept a while, to answer an event delivered again),
is written with one statement each just before the commit.

Conversations are plain objects outside the ORM session while the unit runs: a flow's own
queries never flush them one by one, and a new chat's row is written only if the unit left
something in it (never created to be deleted again)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from storage.models import Conversation, Council, Identity, Person, ProcessedEvent, Role, RoleGrant
from storage.models import utcnow as _utcnow

Chat = tuple[str, str]  # channel, chat id
Sender = tuple[str, str]  # channel, sender id
Roles = set[tuple[Council, Role]]
STATE = ("person_id", "step", "prompt", "options", "data")


@dataclass
class Kept:
    """A chat's conversation as the unit found it, to tell what changed."""

    conversation: Conversation
    stored: bool
    before: tuple[Any, ...]


@dataclass
class Unit:
    """What the unit's events share: its transaction and what was read for all of them."""

    session: AsyncSession
    now: datetime = field(default_factory=_utcnow)
    conversations: dict[Chat, Kept] = field(default_factory=dict)
    persons: dict[Sender, Person | None] = field(default_factory=dict)
    roles: dict[Sender, Roles] | None = None  # read when a flow first asks
    dropped: set[int] = field(default_factory=set)  # ids of conversation rows to delete
    seen: dict[int, Person] = field(default_factory=dict)  # people whose last visit moves

    @property
    def insert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        return postgresql_insert if dialect == "postgresql" else sqlite_insert

    async def first_times(self, events: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Record the events' ids; those that were not processed before (one INSERT … ON
        CONFLICT DO NOTHING RETURNING)."""
        keys = list(dict.fromkeys(events))
        if not keys:
            return set()
        statement = (
            self.insert(ProcessedEvent)
            .values([{"channel": c, "event_id": e, "processed_at": self.now} for c, e in keys])
            .on_conflict_do_nothing()
            .returning(ProcessedEvent.channel, ProcessedEvent.event_id)
        )
        return {(row.channel, row.event_id) for row in await self.session.execute(statement)}

    async def kept_replies(
        self, events: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """What these events (delivered again) answered, as kept by `keep_replies`."""
        rows = await self.session.execute(
            select(ProcessedEvent.channel, ProcessedEvent.event_id, ProcessedEvent.replies).where(
                tuple_(ProcessedEvent.channel, ProcessedEvent.event_id).in_(list(events)),
                ProcessedEvent.replies.is_not(None),
            )
        )
        return {(channel, event_id): replies or [] for channel, event_id, replies in rows}

    async def keep_replies(
        self, answered: Iterable[tuple[str, int, str, list[dict[str, Any]]]]
    ) -> None:
        """Keep what events answered (channel, event id, chat, replies), to answer them again
        if they are delivered again (one statement)."""
        rows = [
            {"c": channel, "e": event_id, "chat": chat, "replies": replies}
            for channel, event_id, chat, replies in answered
        ]
        if rows:
            table = ProcessedEvent.__table__
            assert isinstance(table, Table)
            connection = await self.session.connection()  # Core: one executemany
            await connection.execute(
                update(table)
                .where(table.c.channel == bindparam("c"), table.c.event_id == bindparam("e"))
                .values(chat_id=bindparam("chat"), replies=bindparam("replies")),
                rows,
            )

    async def load(self, chats: Sequence[Chat], senders: Sequence[Sender]) -> None:
        """The chats' conversations (locked for the transaction) and the senders' persons."""
        chats = [chat for chat in dict.fromkeys(chats) if chat not in self.conversations]
        if chats:
            table = Conversation.__table__
            rows = await self.session.execute(
                select(table)
                .where(tuple_(table.c.channel, table.c.external_id).in_(chats))
                .with_for_update()
            )
            for row in rows.mappings():
                conversation = Conversation(**row)
                self._track((row["channel"], row["external_id"]), conversation, stored=True)
            for chat in chats:
                if chat not in self.conversations:
                    self.fresh(chat)
        senders = [sender for sender in dict.fromkeys(senders) if sender not in self.persons]
        for channel in {channel for channel, _ in senders}:
            ids = [sender_id for c, sender_id in senders if c == channel]
            found = await self.session.execute(
                select(Person, Identity.external_id)
                .join(Identity, Identity.person_id == Person.id)
                .where(Identity.channel == channel, Identity.external_id.in_(ids))
                .options(selectinload(Person.identities))
            )
            persons = {external_id: person for person, external_id in found}
            for sender_id in ids:
                self.persons[(channel, sender_id)] = persons.get(sender_id)

    def fresh(self, chat: Chat) -> Conversation:
        """A new, empty conversation for a chat (written only if something is left in it)."""
        conversation = Conversation(
            channel=chat[0],
            external_id=chat[1],
            person_id=None,
            step=None,
            data={},
            prompt=0,
            options=[],
        )
        self._track(chat, conversation, stored=False)
        return conversation

    def _track(self, chat: Chat, conversation: Conversation, *, stored: bool) -> None:
        before = tuple(copy.deepcopy(getattr(conversation, name)) for name in STATE)
        self.conversations[chat] = Kept(conversation, stored, before)

    def drop(self, chat: Chat) -> Conversation:
        """The chat's conversation goes (an erasure); a fresh one stands for what follows."""
        kept = self.conversations[chat]
        if kept.stored:
            self.dropped.add(kept.conversation.id)
        return self.fresh(chat)

    def saw(self, person: Person, every: timedelta) -> None:
        """The person wrote or tapped: their last visit moves, at most once per `every`."""
        if person.last_seen_at is None or person.last_seen_at <= self.now - every:
            set_committed_value(person, "last_seen_at", self.now)  # written in write()
            self.seen[person.id] = person

    async def roles_of(self, sender: Sender) -> Roles:
        """A sender's staff roles, read for every sender of the unit the first time one is
        asked for: held by this identity or by any other identity of the same person."""
        if self.roles is None:
            self.roles = {}
            holders: dict[tuple[str, str], set[Sender]] = {}
            for who, person in self.persons.items():
                linked = person.identities if person is not None else []
                for key in {who, *((i.channel, i.external_id) for i in linked)}:
                    holders.setdefault(key, set()).add(who)
                self.roles[who] = set()
            grants = await self.session.scalars(
                select(RoleGrant)
                .where(tuple_(RoleGrant.channel, RoleGrant.external_id).in_(list(holders)))
                .options(selectinload(RoleGrant.council))
            )
            for grant in grants:
                for who in holders.get((grant.channel, grant.external_id), ()):
                    self.roles[who].add((grant.council, grant.role))
        return self.roles[sender]

    async def write(self) -> None:
        """Write what changed: conversations (one upsert, one delete) and last visits."""
        await self.session.flush()  # the persons a conversation may now point to
        rows = []
        for (channel, external_id), kept in self.conversations.items():
            conversation = kept.conversation
            state = tuple(getattr(conversation, name) for name in STATE)
            empty = conversation.step is None and not conversation.data
            if empty and conversation.person_id is None:
                # Nothing to keep for someone who has not consented and is not being asked.
                if kept.stored:
                    self.dropped.add(conversation.id)
                continue
            if state == kept.before or (not kept.stored and empty and not conversation.prompt):
                continue
            rows.append(
                {"channel": channel, "external_id": external_id, "updated_at": self.now}
                | dict(zip(STATE, state, strict=True))
            )
        if rows:
            statement = self.insert(Conversation).values(rows)
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["channel", "external_id"],
                    set_={name: statement.excluded[name] for name in (*STATE, "updated_at")},
                )
            )
        if self.dropped:
            await self.session.execute(
                delete(Conversation).where(Conversation.id.in_(self.dropped))
            )
        if self.seen:
            await self.session.execute(
                update(Person)
                .where(Person.id.in_(list(self.seen)))
                .values(last_seen_at=self.now)
                .execution_options(synchronize_session=False)
            )
