"""Long texts cut into messages a channel accepts.

Telegram refuses a text over 4,096 characters and a caption over 1,024; WhatsApp a text body
over 4,096 and an interactive body over 1,024. Both count UTF-16 code units (an emoji outside
the basic plane counts twice), so that is what `width` measures. A reply longer than that is
cut rather than refused: between paragraphs, else between lines, else between words, and
inside a word only when one word is longer than a whole message.
"""

from __future__ import annotations

import unicodedata

# Where a text may be cut, best first. A cut drops the separator it falls on.
PARAGRAPH = "\n\n"
LINE = "\n"
SPACES = (" ", "\t", "\u3000")  # a no-break space is not a place to cut
JOINERS = frozenset("\u200d\u200c\ufe0e\ufe0f")  # kept with the character before them


def width(text: str) -> int:
    """Length as Telegram and WhatsApp count it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def split(text: str, limit: int) -> list[str]:
    """`text` in parts of at most `limit` UTF-16 units each, in order; blank parts left out.

    A cut is made in the second half of a part when it can (so parts stay full), at the
    best separator found there; else at the last separator anywhere in the part."""
    if limit < 2:
        raise ValueError("a part holds at least two units (one character beyond the BMP)")
    parts: list[str] = []
    rest = text
    while width(rest) > limit:
        head = rest.encode("utf-16-le")[: 2 * limit].decode("utf-16-le", "ignore")
        cut, after = _cut(rest, head)
        parts.append(rest[:cut])
        rest = rest[after:]
    parts.append(rest)
    kept = [part for part in parts if part.strip()]
    return kept or [text]


def _cut(text: str, head: str) -> tuple[int, int]:
    """Where to end this part (`head` is the most it can hold) and where the next starts."""
    half = len(head) // 2
    found: list[tuple[int, int]] = []
    for separators in ((PARAGRAPH,), (LINE,), SPACES):
        at = max(head.rfind(separator, 1) for separator in separators)
        if at > 0:
            size = len(PARAGRAPH) if separators == (PARAGRAPH,) else 1
            if at >= half:
                return at, at + size
            found.append((at, at + size))
    if found:
        return found[0]
    # One word longer than a message: cut it, but not between a letter and its marks.
    at = len(head)
    while at > 1 and (unicodedata.combining(text[at]) or text[at] in JOINERS):
        at -= 1
    return at, at
