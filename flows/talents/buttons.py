"""The buttons of the question "is your profile still right?"."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flows.buttons import Button


class Refresh(enum.StrEnum):
    OK = "ok"  # still right: keep it visible
    EDIT = "edit"  # open it to update it


@dataclass(frozen=True)
class RefreshButton(Button, prefix="tref"):
    """The member's answer about their profile (only its owner's counts)."""

    profile_id: int
    answer: Refresh
