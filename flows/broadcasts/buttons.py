"""The button on a broadcast's progress report."""

from __future__ import annotations

from dataclasses import dataclass

from flows.buttons import Button


@dataclass(frozen=True)
class StopButton(Button, prefix="bstop"):
    """Stop sending this broadcast (its council's coordinators and whoever started it)."""

    broadcast_id: int
