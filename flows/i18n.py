"""Catalogs, locale choice and Babel formatting, channel-neutral.

Flows render for the person they talk to, and for other people (broadcasts,
jobs) in those people's own locale: the locale is always passed explicitly.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent

from locales import CATALOGS

DEFAULT_LOCALE = "fr"
SHIPPED_LOCALES = ("fr", "en", "ar")
RTL_LOCALES = frozenset({"ar"})


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where it is shown."""
    return message


@cache
def _translations(locale: str) -> gettext.NullTranslations:
    """Load the compiled catalog, or compile the .po in memory in a source checkout."""
    directory = CATALOGS / locale / "LC_MESSAGES"
    mo_path = directory / "messages.mo"
    po_path = directory / "messages.po"
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as mo_file:
            return gettext.GNUTranslations(mo_file)
    if po_path.exists():
        import io

        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return gettext.GNUTranslations(buffer)
    return gettext.NullTranslations()


def negotiate(language_code: str | None) -> str:
    """Pick a shipped locale for a client's language code (``ar-EG`` → ``ar``), else the default."""
    if not language_code:
        return DEFAULT_LOCALE
    try:
        parsed = Locale.parse(language_code.replace("_", "-"), sep="-")
    except (ValueError, UnknownLocaleError):
        return DEFAULT_LOCALE
    return parsed.language if parsed.language in SHIPPED_LOCALES else DEFAULT_LOCALE


def first_language(accept_language: str | None) -> str | None:
    """A browser's preferred language from its Accept-Language header ("ar-EG,ar;q=0.9" →
    "ar-EG"), for `negotiate`."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip()
    return first or None


def typed_number(text: str) -> int | None:
    """A whole number typed alone, in any script's digits ("4", "٤", "۴"); None otherwise.
    Where a number or a scale is asked, one typed in range is as good as its button."""
    bare = text.strip().rstrip(".")
    return int(bare) if bare.isdecimal() and len(bare) <= 6 else None


def language_name(locale: str) -> str:
    """The language's own name for itself, capitalised: 'Français', 'English', 'العربية'."""
    name = Locale.parse(locale).get_display_name(locale) or locale
    return name[:1].upper() + name[1:]


Moment = datetime  # the class below has a method named datetime


@dataclass(frozen=True)
class Translator:
    """Everything needed to write for one person: their catalog and Babel locale."""

    locale: str

    def _(self, message: str) -> str:
        return _translations(self.locale).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return _translations(self.locale).ngettext(singular, plural, n)

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, share: float) -> str:
        """0.4 → "40 %" (fr), "40%" (en)."""
        return format_percent(share, locale=self.locale)

    def money(self, amount: float, currency: str) -> str:
        return str(format_currency(amount, currency, locale=self.locale))

    def decimal(self, value: float) -> str:
        """One decimal: 3.8 → "3,8" (fr)."""
        return format_decimal(round(value, 1), format="0.0", locale=self.locale)

    def datetime(self, moment: datetime, timezone: str, format: str = "full") -> str:
        """A date (in `format`) and its hour in the council's time zone, written the person's
        way, never with seconds: "9 déc. 2026 à 18:00"."""
        local = moment.astimezone(ZoneInfo(timezone))
        return self._("{date} at {time}").format(
            date=format_date(local, format=format, locale=self.locale),
            time=format_time(local, format="short", locale=self.locale),
        )

    def moment(self, moment: Moment, timezone: str) -> str:
        """The day and hour of a meeting: "samedi 5 décembre 2026 à 14:00"."""
        local = moment.astimezone(ZoneInfo(timezone))
        return self._("{date} at {time}").format(
            date=format_date(local, format="full", locale=self.locale),
            time=format_time(local, format="short", locale=self.locale),
        )

    def hour(self, moment: Moment, timezone: str) -> str:
        return format_time(
            moment.astimezone(ZoneInfo(timezone)), format="short", locale=self.locale
        )

    def day(self, moment: Moment, timezone: str, format: str = "full") -> str:
        return format_date(moment.astimezone(ZoneInfo(timezone)), format=format, locale=self.locale)

    def day_label(self, day: date) -> str:
        """A day on a button: "sam. 5 déc.", "Sat, Dec 5"."""
        return format_skeleton("MMMEd", datetime.combine(day, time()), locale=self.locale)

    def time_label(self, moment: time) -> str:
        return format_time(moment, format="short", locale=self.locale)

    @property
    def rtl(self) -> bool:
        return self.locale in RTL_LOCALES

    @property
    def back(self) -> str:
        """The back button's label, its arrow pointing backwards in the reading direction."""
        return ("▶ " if self.rtl else "◀ ") + self._("Back")

    @property
    def skip(self) -> str:
        """The skip button's label, its arrow pointing forwards in the reading direction."""
        return self._("Skip") + (" ⏮" if self.rtl else " ⏭")

    @property
    def pages(self) -> tuple[str, str]:
        """The arrows of the previous and the next page, in the reading direction."""
        return ("▶", "◀") if self.rtl else ("◀", "▶")
