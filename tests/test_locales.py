"""Every message is translated in every shipped language, placeholders intact,
and the build ships compiled catalogs."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import locales
from flows.i18n import SHIPPED_LOCALES, Translator, language_name, negotiate

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def source_messages() -> set[str]:
    """Every msgid the code marks for translation (singulars; plurals keyed by their singular)."""
    found: set[str] = set()
    for package in ("bot", "flows"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, keywords=KEYWORDS, comment_tags=()
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog(locale: str) -> Catalog:
    with (locales.CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        return read_po(po_file, locale=locale)


def forms(value: object) -> tuple[str, ...]:
    """A catalog entry's id or string as a tuple of texts (one per plural form)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list):
        return tuple(str(part) for part in value)
    return ()


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_the_code_marks_messages() -> None:
    assert len(source_messages()) > 30


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_every_message_is_translated(locale: str) -> None:
    translations = catalog(locale)
    missing = []
    for msgid in sorted(source_messages()):
        message = translations.get(msgid)
        strings = message.string if message is not None else ""
        forms = strings if isinstance(strings, tuple) else (strings,)
        if message is None or message.fuzzy or not all(forms):
            missing.append(msgid)
    assert missing == [], f"{locale}: {len(missing)} untranslated: {missing[:5]}"


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_translations_keep_their_placeholders(locale: str) -> None:
    broken = []
    for message in catalog(locale):
        if not message.id:
            continue
        ids = forms(message.id)
        expected = set().union(*(placeholders(text) for text in ids))
        for form in forms(message.string):
            if not form:
                continue
            try:
                got = placeholders(form)
            except ValueError:
                broken.append((message.id, form))
                continue
            # A plural form may leave out the count ("one message") but never invent a field.
            if got - expected or (len(ids) == 1 and got != expected):
                broken.append((message.id, form))
    assert broken == [], f"{locale}: {broken[:5]}"


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_plural_forms_are_complete(locale: str) -> None:
    translations = catalog(locale)
    for message in translations:
        if len(forms(message.id)) > 1:
            assert len(forms(message.string)) == translations.num_plurals, message.id


def test_commands_stay_literal_in_translations() -> None:
    command = re.compile(r"/[a-z]+")
    for locale in SHIPPED_LOCALES:
        for message in catalog(locale):
            if message.id and isinstance(message.id, str) and message.string:
                assert set(command.findall(message.id)) <= set(
                    command.findall(str(message.string))
                ), (
                    locale,
                    message.id,
                )


def test_the_installed_package_carries_compiled_catalogs() -> None:
    for locale in SHIPPED_LOCALES:
        mo_file = locales.CATALOGS / locale / "LC_MESSAGES" / "messages.mo"
        assert mo_file.exists(), f"{mo_file} was not compiled by the build"


def test_locale_negotiation() -> None:
    assert negotiate("ar-EG") == "ar"
    assert negotiate("en_US") == "en"
    assert negotiate("pt-BR") == "fr"
    assert negotiate("not a language") == "fr"
    assert negotiate(None) == "fr"
    assert [language_name(code) for code in SHIPPED_LOCALES] == ["Français", "English", "العربية"]


def test_numbers_are_written_the_local_way() -> None:
    assert Translator("fr").number(12000) == "12\u202f000"
    assert Translator("en").number(12000) == "12,000"
    assert Translator("ar").rtl and not Translator("fr").rtl


def test_french_typography() -> None:
    """A narrow no-break space before : ; ! ? (never an ordinary space, never none), and
    « guillemets » (with no-break spaces inside) rather than “ ” or straight quotes."""
    faults = []
    for message in catalog("fr"):
        if not message.id:
            continue
        for text in forms(message.string):
            # Links, placeholders and times (14:30) aside.
            bare = re.sub(r"https?://\S+|\{[^}]*\}|\d:\d", "", text)
            if re.search(r"[^\u202f][:;!?]", bare) or re.search(r"[“”\"]", bare):
                faults.append(text)
            if re.search(r"«(?!\u00a0)|(?<!\u00a0)»", bare):
                faults.append(text)
    assert faults == []


def test_french_never_puts_a_preposition_before_a_council_s_name() -> None:
    """A council's name carries no article ("Conseil citoyen Nord"): "de {council}" would
    read "de Conseil citoyen Nord", where French says "du". The French strings make the
    council the subject or the object, or set its name apart ("votre conseil : {council}")."""
    before = re.compile(
        r"\b(?:de|du|des|à|au|aux|par|pour|avec|chez|sur)\s+\{council\}|d\u2019\{council\}"
    )
    faults = [
        text
        for message in catalog("fr")
        if message.id
        for text in forms(message.string)
        if before.search(text)
    ]
    assert faults == []
