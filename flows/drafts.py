"""Typed conversation drafts: what a conversation has gathered so far, as a dataclass.

A flow declares its draft as a dataclass whose every field has a default, with the key it is
kept under in the conversation's JSON data::

    @dataclass
    class AnnouncementDraft(Draft, key="announce"):
        council_id: int = 0
        text: str = ""

A step reads and changes it through ``ctx.draft(AnnouncementDraft)``; the engine writes it
back at the end of the event, in the event's transaction. Fields may be ints, floats,
strings, booleans, enums, dates, times, aware datetimes, lists and dataclasses of these, or
None. A draft that cannot be read back (written by an older version) is a fresh one.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import types
import typing
from datetime import date, datetime, time
from typing import Any, ClassVar, Self, TypeVar

log = logging.getLogger(__name__)

D = TypeVar("D", bound="Draft")


class Draft:
    """Base of every draft. A subclass without a ``key`` is a part others build on (a staff
    task's council), not a draft of its own."""

    key: ClassVar[str | None] = None

    def __init_subclass__(cls, *, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.key = key

    @classmethod
    def check(cls) -> None:
        """Fail now (the engine is being built) on a draft that could not be kept."""
        if not cls.key:
            raise TypeError(f"{cls.__name__} declares no key")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        try:
            fresh = cls()
        except TypeError as error:
            raise TypeError(f"{cls.__name__}: every field needs a default") from error
        if cls.load(fresh.dump()) != fresh:
            raise TypeError(f"{cls.__name__} does not come back the same from JSON")

    @classmethod
    def load(cls, raw: object) -> Self:
        """The draft kept as ``raw``; a fresh one when there is none or it cannot be read."""
        if raw is None:
            return cls()
        try:
            loaded: Self = _read(cls, raw)
        except (TypeError, ValueError, KeyError) as error:
            log.info("dropped an unreadable %s: %s", cls.__name__, error)
            return cls()
        return loaded

    def dump(self) -> dict[str, Any]:
        """The draft as JSON-ready data."""
        written = _write(self)
        assert isinstance(written, dict)
        return written


def _write(value: object) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be kept: {value!r}")
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_write(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _write(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot keep {type(value).__name__} in a draft")


def _read(kind: Any, raw: object) -> Any:
    """``raw`` (from JSON) as a value of type ``kind``; TypeError or ValueError if it is not."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if raw is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _read(option, raw)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{raw!r} is not a {kind}")
    if origin is list:
        if not isinstance(raw, list):
            raise TypeError(f"{raw!r} is not a list")
        (item,) = typing.get_args(kind)
        return [_read(item, value) for value in raw]
    if kind is type(None):
        if raw is not None:
            raise TypeError(f"{raw!r} is not None")
        return None
    if not isinstance(kind, type):
        raise TypeError(f"drafts cannot hold {kind}")
    if issubclass(kind, enum.Enum):
        return kind(raw)
    if kind is bool:
        if not isinstance(raw, bool):
            raise TypeError(f"{raw!r} is not a boolean")
        return raw
    if kind is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TypeError(f"{raw!r} is not an int")
        return raw
    if kind is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise TypeError(f"{raw!r} is not a number")
        return float(raw)
    if kind is str:
        if not isinstance(raw, str):
            raise TypeError(f"{raw!r} is not a string")
        return raw
    if kind is datetime:
        if not isinstance(raw, str):
            raise TypeError(f"{raw!r} is not a datetime")
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError(f"{raw!r} has no time zone")
        return moment
    if kind in (date, time):
        if not isinstance(raw, str):
            raise TypeError(f"{raw!r} is not a {kind.__name__}")
        return kind.fromisoformat(raw)
    if dataclasses.is_dataclass(kind):
        if not isinstance(raw, dict):
            raise TypeError(f"{raw!r} is not a {kind.__name__}")
        hints = typing.get_type_hints(kind)
        values = {
            f.name: _read(hints[f.name], raw[f.name])
            for f in dataclasses.fields(kind)
            if f.init and f.name in raw
        }
        return kind(**values)
    raise TypeError(f"drafts cannot hold {kind.__name__}")
