"""Gettext catalogs: locales/<lang>/LC_MESSAGES/messages.po, compiled to .mo at build time."""

from pathlib import Path

CATALOGS = Path(__file__).parent
