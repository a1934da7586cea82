"""The button of the warning sent to members silent for too long."""

from __future__ import annotations

from dataclasses import dataclass

from flows.buttons import Button


@dataclass(frozen=True)
class StayButton(Button, prefix="stay"):
    """ "I want to stay" (only the membership's own person may tap it)."""

    membership_id: int
