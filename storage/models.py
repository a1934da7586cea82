"""The tables. Every record that concerns residents belongs to a council."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime, time
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Role(enum.StrEnum):
    RESIDENT = "resident"
    ORGANISER = "organiser"
    COORDINATOR = "coordinator"


class PersonStatus(enum.StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"  # said /stop: no broadcasts until /start
    UNREACHABLE = "unreachable"  # blocked the bot or deactivated


def _enum(kind: type[enum.Enum]) -> Enum:
    """Enums stored as their values, in a plain column (no database enum type to migrate)."""
    return Enum(kind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Council(Base):
    __tablename__ = "councils"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    locale: Mapped[str] = mapped_column(String(16), default="fr")
    # No broadcast reaches residents between these times (the council's time zone),
    # except what an organiser marked urgent.
    quiet_start: Mapped[time | None] = mapped_column(Time, default=time(21, 0))
    quiet_end: Mapped[time | None] = mapped_column(Time, default=time(8, 0))
    # Where residents live, offered as buttons in the talent directory (empty: not asked).
    neighbourhoods: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Directory members are asked to confirm their profile this often, and hidden from
    # searches if they do not answer within the grace period.
    profile_refresh_days: Mapped[int] = mapped_column(Integer, default=182)
    profile_grace_days: Mapped[int] = mapped_column(Integer, default=30)
    # The council's group chat, registered by a coordinator sending /register there: results
    # and digests are posted to it.
    group_channel: Mapped[str | None] = mapped_column(String(16))
    group_chat_id: Mapped[str | None] = mapped_column(String(64))
    # In results, a breakdown cell with fewer respondents than this is merged or hidden.
    small_group_threshold: Mapped[int] = mapped_column(Integer, default=5)
    digest_days: Mapped[int] = mapped_column(Integer, default=7)  # 0: no digest
    # A member silent this long is warned, then erased a month later unless they tap to
    # stay (0: never).
    inactive_months: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    next_digest_at: Mapped[datetime | None]
    last_digest_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Person(Base):
    """A resident who gave consent. Nobody is a Person before that."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(16))
    status: Mapped[PersonStatus] = mapped_column(
        Enum(
            PersonStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=PersonStatus.ACTIVE,
    )
    consent_version: Mapped[str] = mapped_column(String(16))
    consented_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When they last wrote or tapped, on any channel (to the day: written at most daily).
    last_seen_at: Mapped[datetime | None]
    # A web chat person counts once the council vouches for them: an invitation code, a
    # link from Telegram or WhatsApp (whose accounts are tied to a phone), a coordinator.
    verified_at: Mapped[datetime | None]
    verified_by: Mapped[str | None] = mapped_column(String(16))  # code, link, coordinator

    identities: Mapped[list[Identity]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )


class Identity(Base):
    """How a person is reached on one channel (a Telegram user id, a web chat id)."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index(
            "uq_identities_preferred",
            "person_id",
            unique=True,
            postgresql_where=text("preferred"),
            sqlite_where=text("preferred"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(64))
    # The one address the council's messages go to (a person's first identity): a flag, so
    # queueing a broadcast joins on it instead of searching each person's oldest identity.
    preferred: Mapped[bool] = mapped_column(default=True)
    # When the person last wrote on this channel: WhatsApp lets a business write freely only
    # within 24 hours of it, and asks for an approved template otherwise.
    last_inbound_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="identities")


class Membership(Base):
    """A person belongs to a council."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("person_id", "council_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    council_id: Mapped[int] = mapped_column(
        ForeignKey("councils.id", ondelete="CASCADE"), index=True
    )
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where they live, if they said (asked once, for results by neighbourhood).
    neighbourhood: Mapped[str | None] = mapped_column(String(100))
    # When they were told that, silent so long, they would soon be erased (None: not yet).
    inactivity_warned_at: Mapped[datetime | None]

    person: Mapped[Person] = relationship(back_populates="memberships")
    council: Mapped[Council] = relationship()


class RoleGrant(Base):
    """A staff role in one council, granted by the deployer to a channel identity.

    Keyed by the identity rather than the person so that a coordinator can be
    named before they first talk to the bot.
    """

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("council_id", "channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    council: Mapped[Council] = relationship()


class Conversation(Base):
    """Where one chat stands in its current flow. Survives restarts.

    Before consent this row holds only what is needed to ask for it: the
    chat's address, the chosen language and council.
    """

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessedEvent(Base):
    """An inbound event already handled (Telegram re-delivers webhook calls), and for a
    while what it answered: an event delivered again because the process stopped before the
    messenger learnt it was handled is answered again, not handled again."""

    __tablename__ = "processed_events"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    chat_id: Mapped[str | None] = mapped_column(String(64))  # set with `replies`
    replies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class ChannelPace(Base):
    """A channel's sending pace shared by every process that sends (PostgreSQL): when its
    next message may go. See `bot.pace`."""

    __tablename__ = "channel_paces"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_at: Mapped[datetime] = mapped_column()


class AppSecret(Base):
    """Secrets the application makes for itself once (the web chat's cookie key)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BroadcastStatus(enum.StrEnum):
    PENDING = "pending"  # queued, waiting for its time (quiet hours) or the dispatcher
    SENDING = "sending"
    DONE = "done"
    INTERRUPTED = "interrupted"  # stopped by its coordinator; what was not sent is cancelled


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a dispatcher
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the person said /stop, left, or the broadcast was interrupted


class Priority(enum.IntEnum):
    """Lower goes first."""

    REPLY = 0  # someone is waiting for this answer
    URGENT = 1  # marked urgent by an organiser: ignores quiet hours
    REPORT = 2  # progress reports to the coordinator
    BROADCAST = 5


class Broadcast(Base):
    """One message sent to many: who started it, for which council, how far it got."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(
        ForeignKey("councils.id", ondelete="CASCADE"), index=True
    )
    started_by: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(
        String(64)
    )  # the record that caused it, e.g. "call:12"
    status: Mapped[BroadcastStatus] = mapped_column(
        _enum(BroadcastStatus), default=BroadcastStatus.PENDING
    )
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    max_rate: Mapped[float | None] = mapped_column(Float)  # messages per second, to smooth it out
    # The message in each language, stored once: each outbox row names its language.
    payloads: Mapped[dict[str, Any]] = mapped_column(default=dict)
    audience_size: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    unreachable: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Where progress is reported: one message, edited as the broadcast goes.
    report_channel: Mapped[str | None] = mapped_column(String(16))
    report_chat_id: Mapped[str | None] = mapped_column(String(64))
    report_locale: Mapped[str | None] = mapped_column(String(16))
    report_message_id: Mapped[str | None] = mapped_column(String(64))
    report_text: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A message waiting to go out, rendered in its recipient's language.

    No foreign keys: a broadcast writes its whole audience at once, and each key would
    cost a lookup per row (on PostgreSQL, most of the time of a 100,000-row broadcast).
    Erasing a person deletes their rows explicitly (storage.queries.people.erase).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "priority", "next_attempt_at"),
        # A broadcast's rows are written together, so on PostgreSQL a block-range index finds
        # them almost as well as a B-tree, at a fraction of its cost per row written.
        Index(
            "ix_outbox_broadcast_status",
            "broadcast_id",
            "status",
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        ),
        Index(
            "uq_outbox_provider_id",
            "provider_id",
            unique=True,
            postgresql_where=text("provider_id IS NOT NULL"),
            sqlite_where=text("provider_id IS NOT NULL"),
        ),
        # Messages sent as a template whose full text waits for the person to open the chat.
        Index(
            "ix_outbox_held",
            "channel",
            "chat_id",
            postgresql_where=text("template IS NOT NULL AND opened_at IS NULL"),
            sqlite_where=text("template IS NOT NULL AND opened_at IS NULL"),
        ),
        Index(
            "uq_outbox_idempotency_key",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    broadcast_id: Mapped[int | None]
    council_id: Mapped[int | None]
    person_id: Mapped[int | None] = mapped_column()  # no index: see outbox.claim
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(SmallInteger, default=Priority.BROADCAST)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A message too long for one goes as several: those sent before a retry are not resent.
    parts_sent: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))  # single messages only
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The channel's id of the message once sent (WhatsApp's), to which its receipts refer.
    provider_id: Mapped[str | None] = mapped_column(String(128))
    receipt: Mapped[str | None] = mapped_column(String(16))  # delivered, read (WhatsApp)
    # Sent as this WhatsApp template (outside the 24-hour window): the full message waits
    # until the person opens the conversation, then goes out (opened_at).
    template: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime | None]


class Skill(Base):
    """One entry of a council's skills catalogue.

    Skills from the shipped catalogue have no labels of their own: their names come
    from the translation catalogs. A council's own skills carry a label per language.
    """

    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("council_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class TalentProfile(Base):
    """A resident in a council's talent directory."""

    __tablename__ = "talent_profiles"
    __table_args__ = (UniqueConstraint("council_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(ForeignKey("councils.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    own_words: Mapped[str | None] = mapped_column(String(300))
    languages: Mapped[str | None] = mapped_column(String(200))
    weekdays: Mapped[bool] = mapped_column(Boolean, default=False)
    evenings: Mapped[bool] = mapped_column(Boolean, default=False)
    weekends: Mapped[bool] = mapped_column(Boolean, default=False)
    neighbourhood: Mapped[str | None] = mapped_column(String(100))
    contact_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime] = mapped_column(default=utcnow)  # last said "still right"
    hidden_at: Mapped[datetime | None]  # stale: did not confirm in time; hidden from searches
    refresh_asked_at: Mapped[datetime | None]  # when we last asked "is this still right?"

    skills: Mapped[list[ProfileSkill]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class ProfileSkill(Base):
    __tablename__ = "profile_skills"
    __table_args__ = (Index("ix_profile_skills_skill_profile", "skill_id", "profile_id"),)

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("talent_profiles.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[int] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
    )


class CallStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # past its deadline: the coordinator got the summary


class Answer(enum.StrEnum):
    YES = "yes"
    MAYBE = "maybe"
    NO = "no"


class Call(Base):
    """A call for talents: a local project asks residents for a helping hand."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_status_deadline", "status", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(
        ForeignKey("councils.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))
    holder_chat: Mapped[str | None] = mapped_column(String(64))  # where answers are reported
    holder_channel: Mapped[str | None] = mapped_column(String(16))
    holder_locale: Mapped[str] = mapped_column(String(16), default="fr")
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(1000))
    skill_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # empty: every member
    needed_when: Mapped[str] = mapped_column(String(200))
    people_needed: Mapped[int] = mapped_column(Integer, default=1)
    accepts_unverified: Mapped[bool] = mapped_column(Boolean, default=True)
    deadline: Mapped[datetime]
    status: Mapped[CallStatus] = mapped_column(_enum(CallStatus), default=CallStatus.OPEN)
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class CallAnswer(Base):
    """A resident's answer to a call: one row per person, changed in place."""

    __tablename__ = "call_answers"
    __table_args__ = (UniqueConstraint("call_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    answer: Mapped[Answer] = mapped_column(_enum(Answer))
    message: Mapped[str | None] = mapped_column(String(300))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntroductionStatus(enum.StrEnum):
    ASKED = "asked"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class Introduction(Base):
    """A coordinator asked to put a resident in touch for a call; the resident decides."""

    __tablename__ = "introductions"
    __table_args__ = (UniqueConstraint("call_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[IntroductionStatus] = mapped_column(
        _enum(IntroductionStatus), default=IntroductionStatus.ASKED
    )
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]


class MeetingStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Rsvp(enum.StrEnum):
    INVITED = "invited"  # no answer yet
    COMING = "coming"
    MAYBE = "maybe"
    DECLINED = "declined"
    WAITING = "waiting"  # wants to come, the meeting is full: first in line gets a freed seat


class ReminderKind(enum.StrEnum):
    REMINDER = "reminder"  # to those coming or maybe, some hours before the start
    SUMMARY = "summary"  # to the organiser, at the RSVP deadline


class ReminderStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DROPPED = "dropped"  # its moment passed while the bot was down, beyond its grace
    CANCELLED = "cancelled"  # the meeting moved or was cancelled
    FAILED = "failed"  # its work raised: see scheduled_failures


class Meeting(Base):
    """A meeting residents are invited to; times are stored in UTC, shown in the council's
    time zone."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(
        ForeignKey("councils.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))
    organiser_channel: Mapped[str | None] = mapped_column(String(16))
    organiser_chat: Mapped[str | None] = mapped_column(String(64))  # where RSVPs are reported
    organiser_locale: Mapped[str] = mapped_column(String(16), default="fr")
    uid: Mapped[str] = mapped_column(String(80), unique=True)  # the calendar event's UID
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(1000), default="")
    place: Mapped[str] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    capacity: Mapped[int | None] = mapped_column(Integer)  # people, guests included
    rsvp_deadline: Mapped[datetime | None]
    audience: Mapped[str] = mapped_column(String(16), default="all")  # all, skills, call
    skill_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    reminder_hours: Mapped[list[int]] = mapped_column(JSON, default=list)  # empty: no reminders
    reminder_note: Mapped[str | None] = mapped_column(String(300))
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # +1 at each change (calendar)
    status: Mapped[MeetingStatus] = mapped_column(
        _enum(MeetingStatus), default=MeetingStatus.SCHEDULED
    )
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]


class MeetingInvite(Base):
    """One invited person and their answer, changed in place."""

    __tablename__ = "meeting_invites"
    __table_args__ = (
        UniqueConstraint("meeting_id", "person_id"),
        Index("ix_meeting_invites_meeting_rsvp", "meeting_id", "rsvp"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    rsvp: Mapped[Rsvp] = mapped_column(_enum(Rsvp), default=Rsvp.INVITED)
    guests: Mapped[int] = mapped_column(SmallInteger, default=0)  # people coming along
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)  # childcare, access, interpreting
    answered_at: Mapped[datetime | None]  # the waiting list's order
    attended: Mapped[bool | None] = mapped_column(Boolean)


class MeetingReminder(Base):
    """A reminder or a summary due at a moment: the scheduler's tick claims it when due."""

    __tablename__ = "meeting_reminders"
    __table_args__ = (Index("ix_meeting_reminders_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ReminderKind] = mapped_column(_enum(ReminderKind))
    hours_before: Mapped[int | None] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)  # the meeting's version it was made for
    due_at: Mapped[datetime]
    status: Mapped[ReminderStatus] = mapped_column(
        _enum(ReminderStatus), default=ReminderStatus.PENDING
    )
    done_at: Mapped[datetime | None]


class ConsultationStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # opens later
    OPEN = "open"
    CLOSED = "closed"  # results computed and posted


class QuestionKind(enum.StrEnum):
    SINGLE = "single"
    MULTIPLE = "multiple"
    SCALE = "scale"  # 1 to 5
    TEXT = "text"  # a short free text


class Consultation(Base):
    """A few quick questions to an audience, with a deadline; results at closing."""

    __tablename__ = "consultations"
    __table_args__ = (
        Index("ix_consultations_status_opens", "status", "opens_at"),
        Index("ix_consultations_status_closes", "status", "closes_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    council_id: Mapped[int] = mapped_column(
        ForeignKey("councils.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))
    organiser_channel: Mapped[str | None] = mapped_column(String(16))
    organiser_chat: Mapped[str | None] = mapped_column(String(64))
    organiser_locale: Mapped[str] = mapped_column(String(16), default="fr")
    title: Mapped[str] = mapped_column(String(200))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=True)
    # Anonymous consultations: the key that turns a person into their ballot's `voter` while
    # the consultation is open. Erased at closing: from then on nothing joins the two.
    ballot_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    live_results: Mapped[bool] = mapped_column(Boolean, default=False)  # shown to respondents
    # Whether answers of unverified web chat members count (they are counted apart if not).
    counts_unverified: Mapped[bool] = mapped_column(Boolean, default=False)
    audience: Mapped[str] = mapped_column(String(16), default="all")  # all, neighbourhood, skills
    neighbourhood: Mapped[str | None] = mapped_column(String(100))
    skill_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    status: Mapped[ConsultationStatus] = mapped_column(
        _enum(ConsultationStatus), default=ConsultationStatus.SCHEDULED
    )
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="SET NULL")
    )
    audience_size: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # computed at closing
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    followed_up_at: Mapped[datetime | None]  # "what we did with your answers" was sent


class Question(Base):
    __tablename__ = "consultation_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(
        ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[QuestionKind] = mapped_column(_enum(QuestionKind))
    text: Mapped[str] = mapped_column(String(300))
    options: Mapped[list[str]] = mapped_column(JSON, default=list)


def random_id() -> int:
    """A row id that says nothing of when the row was written (ballots, participants)."""
    return secrets.randbelow(2**62) + 1


class Ballot(Base):
    """One respondent's answers. In an anonymous consultation it never holds a person: while
    the consultation is open, `voter` is a keyed hash of the person (see `Consultation.
    ballot_key`), so that they can come back and change their answers; at closing both the
    key and `voter` are erased. Ids are random, so their order does not tell the order of
    answers either. Named consultations keep `person_id`."""

    __tablename__ = "ballots"
    __table_args__ = (
        UniqueConstraint("consultation_id", "person_id"),
        UniqueConstraint("consultation_id", "voter"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
        default=random_id,
    )
    consultation_id: Mapped[int] = mapped_column(
        ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), index=True
    )
    voter: Mapped[str | None] = mapped_column(String(64))
    neighbourhood: Mapped[str | None] = mapped_column(String(100))
    # Which questions it answers, one bit per question position: respondents per question
    # and neighbourhood are then counted from the ballots, not from a million answers.
    answered: Mapped[int] = mapped_column(Integer, default=0)
    # The respondent counted as a verified member when they last answered (kept up to date
    # while the consultation is open, and at closing). Unless the consultation counts
    # everyone, an unverified ballot is left aside.
    verified: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Response(Base):
    """One answer to one question: an option (one row per option ticked), a scale value
    (1 to 5, in `option`) or a short text. The neighbourhood is copied for the breakdown."""

    __tablename__ = "responses"
    # Covers the results' GROUP BY: the figures are read from the index alone.
    __table_args__ = (
        Index("ix_responses_question_place_option", "question_id", "neighbourhood", "option"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ballot_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("ballots.id", ondelete="CASCADE"),
        index=True,
    )
    question_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_questions.id", ondelete="CASCADE")
    )
    option: Mapped[int | None] = mapped_column(SmallInteger)
    text: Mapped[str | None] = mapped_column(String(300))
    neighbourhood: Mapped[str | None] = mapped_column(String(100))


class Participant(Base):
    """Who took part in a consultation (to tell them the results, and who has answered),
    kept apart from what they answered: nothing here joins a ballot. Written at the first
    answer with a random id; an anonymous consultation's rows are written again at closing,
    in person order, so that not even their storage order tells when someone answered."""

    __tablename__ = "consultation_participants"
    __table_args__ = (UniqueConstraint("consultation_id", "person_id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
        default=random_id,
    )
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    neighbourhood: Mapped[str | None] = mapped_column(String(100))


class WebMessage(Base):
    """One message of a web chat conversation, both ways, kept so that a reload, a second tab
    or a new visit shows it again.

    The council's messages (`mailed`: from the outbox, or given on joining) keep their buttons
    when the conversation moves on. From the outbox they are the dispatcher's delivery to the
    web chat: the page may be closed, and they wait here, undelivered, until a page shows
    them. `spent` marks a question whose buttons no longer answer (asked again since)."""

    __tablename__ = "web_messages"
    __table_args__ = (
        Index(
            "ix_web_messages_waiting",
            "chat_id",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
        Index("ix_web_messages_chat", "chat_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(8), default="bot")  # bot, me
    mailed: Mapped[bool] = mapped_column(Boolean, default=False)
    spent: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class PushSubscription(Base):
    """A browser's Web Push subscription for a web chat person (one per browser)."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InviteCode(Base):
    """A single-use code printed on a flyer: who enters it becomes a verified member of the
    council. Only its hash is kept."""

    __tablename__ = "invite_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    council_id: Mapped[int] = mapped_column(
        ForeignKey("councils.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))


class WhatsAppMenu(Base):
    """A list of more than ten choices shown on WhatsApp a page at a time: its "More…" row
    names this row and the page, so a tap after a restart still finds the next page."""

    __tablename__ = "whatsapp_menus"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[Any]] = mapped_column(JSON)  # [[label, data], …]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkCode(Base):
    """A one-time code that links another channel to a person (/link). Only its hash is kept."""

    __tablename__ = "link_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginLink(Base):
    """A one-time dashboard link, sent by the bot on /dashboard. Only its hash is stored."""

    __tablename__ = "login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class DashboardSession(Base):
    """A signed-in dashboard browser. The cookie holds a secret whose hash is the key."""

    __tablename__ = "dashboard_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ScheduledFailure(Base):
    """A due row whose scheduled work raised: its work was rolled back alone, the rest of the
    batch went on, and the job skips it from then on (an admin reads the error here)."""

    __tablename__ = "scheduled_failures"
    __table_args__ = (Index("ix_scheduled_failures_job_row", "job", "row_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(500))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
