"""Typed button data: a prefix and a few ids, packed into at most 64 bytes.

A button is a frozen dataclass declaring its prefix and its fields (ints, strings, booleans
or enums)::

    @dataclass(frozen=True)
    class Rsvp(Button, prefix="mtg"):
        meeting_id: int
        answer: RsvpAnswer

``Rsvp(12, RsvpAnswer.COMING).pack()`` gives ``"mtg:12:coming"`` (and refuses anything over
Telegram's 64 bytes); :func:`decode` turns data a client sent back into the right instance,
or None when it is not one we could have issued. Data from a client can be forged: a decoded
button says what was tapped, never that the sender may do it.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Self

MAX_BYTES: Final = 64
SEPARATOR: Final = ":"

Decoder = Callable[[str], Any]


class Button:
    """Base of every button's data. Subclasses are frozen dataclasses with a ``prefix``."""

    prefix: ClassVar[str]
    # The last field is a string that may hold the separator (conversation choices' values).
    open_ended: ClassVar[bool] = False
    _decoders: ClassVar[tuple[tuple[str, Decoder], ...] | None] = None

    def __init_subclass__(cls, *, prefix: str, open_ended: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not prefix or SEPARATOR in prefix or len(prefix.encode()) >= MAX_BYTES:
            raise ValueError(f"bad button prefix {prefix!r}")
        cls.prefix = prefix
        cls.open_ended = open_ended
        cls._decoders = None

    @classmethod
    def decoders(cls) -> tuple[tuple[str, Decoder], ...]:
        """Each field's name and how to read it back; raises TypeError for a class that is
        not a frozen dataclass of supported fields (the engine asks when it is built)."""
        if cls._decoders is None:
            params = getattr(cls, "__dataclass_params__", None)
            if not dataclasses.is_dataclass(cls) or params is None or not params.frozen:
                raise TypeError(f"{cls.__name__} must be a frozen dataclass")
            hints = typing.get_type_hints(cls)
            found = dataclasses.fields(cls)
            if not found:
                raise TypeError(f"{cls.__name__} carries nothing")
            cls._decoders = tuple((f.name, _decoder(cls, f.name, hints[f.name])) for f in found)
            if cls.open_ended and hints[found[-1].name] is not str:
                raise TypeError(f"{cls.__name__}: an open-ended button ends with a string")
        return cls._decoders

    def pack(self) -> str:
        """``prefix:field:field``; ValueError when it would not come back the same."""
        decoders = self.decoders()
        parts = [self.prefix]
        for index, (name, _read) in enumerate(decoders):
            text = _encode(getattr(self, name))
            last = index == len(decoders) - 1
            if SEPARATOR in text and not (self.open_ended and last):
                raise ValueError(f"{type(self).__name__}.{name} holds {SEPARATOR!r}: {text!r}")
            parts.append(text)
        data = SEPARATOR.join(parts)
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"button data over {MAX_BYTES} bytes: {data!r}")
        return data

    @classmethod
    def unpack(cls, raw: str) -> Self:
        """The button ``raw`` stands for; ValueError when it is not one of ours."""
        if len(raw.encode()) > MAX_BYTES:
            raise ValueError("button data too long")
        decoders = cls.decoders()
        prefix, *parts = raw.split(SEPARATOR, len(decoders) if cls.open_ended else -1)
        if prefix != cls.prefix or len(parts) != len(decoders):
            raise ValueError(f"not a {cls.__name__}")
        values = {name: read(part) for (name, read), part in zip(decoders, parts, strict=True)}
        return cls(**values)


def decode(raw: str, known: Mapping[str, type[Button]]) -> Button | None:
    """The one way from a client's button data to a button: None for anything we did not
    issue (an unknown prefix, a wrong count of fields, a wrong type, too long)."""
    if len(raw.encode()) > MAX_BYTES:
        return None
    kind = known.get(raw.partition(SEPARATOR)[0])
    if kind is None:
        return None
    try:
        return kind.unpack(raw)
    except (ValueError, TypeError):
        return None


def _encode(value: object) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _decoder(cls: type, name: str, kind: object) -> Decoder:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        members = {str(member.value): member for member in kind}

        def read_enum(text: str) -> enum.Enum:
            if text not in members:
                raise ValueError(f"not a {kind.__name__}: {text!r}")
            return members[text]

        return read_enum
    if kind is bool:
        return _read_bool
    if kind is int:
        return _read_int
    if kind is str:
        return str
    raise TypeError(f"{cls.__name__}.{name}: a button carries ints, strings, booleans or enums")


def _read_int(text: str) -> int:
    """Digits as ``str(int)`` writes them: no sign but minus, no leading zero, no spaces,
    no other script's digits."""
    if not (text.isascii() and text.lstrip("-").isdigit()) or str(int(text)) != text:
        raise ValueError(f"not an int: {text!r}")
    return int(text)


def _read_bool(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"not a boolean: {text!r}")
    return text == "1"
