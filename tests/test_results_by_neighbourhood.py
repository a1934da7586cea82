"""Figures by neighbourhood say something or nothing: merged small neighbourhoods alone
("Other neighbourhoods 70 %") are replaced by why there is nothing to show."""

from __future__ import annotations

from typing import Any

from flows.consultations.results import summary
from flows.consultations.service import OTHER, UNKNOWN
from storage.models import Consultation, QuestionKind
from tests.helpers import EN, FR


def results(by_neighbourhood: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "respondents": 10,
        "audience": 40,
        "questions": [
            {
                "kind": QuestionKind.SINGLE,
                "text": "Que faire du square ?",
                "options": ["Un jardin", "Des bancs"],
                "all": {"counts": [7, 3], "answered": 10, "mean": None},
                "by_neighbourhood": by_neighbourhood,
            }
        ],
    }


CELL = {"counts": [7, 3], "answered": 10, "mean": None}
SQUARE = Consultation(title="Le square")
PROTECTED = "Results by neighbourhood are not shown, to protect small groups."


def test_merged_neighbourhoods_alone_say_why_nothing_is_shown() -> None:
    text = summary(EN, SQUARE, results({OTHER: CELL}), final=True)
    assert PROTECTED in text
    assert "By neighbourhood" not in text
    assert "Other neighbourhoods" not in text
    french = summary(FR, SQUARE, results({OTHER: CELL, UNKNOWN: CELL}), final=True)
    assert FR._(PROTECTED) in french
    assert FR._(PROTECTED) != PROTECTED


def test_a_named_neighbourhood_shows_with_the_merged_ones() -> None:
    text = summary(EN, SQUARE, results({"Les Tilleuls": CELL, OTHER: CELL}), final=True)
    assert "By neighbourhood: Les Tilleuls “Un jardin” 70%" in text
    assert "Other neighbourhoods “Un jardin” 70%" in text
    assert PROTECTED not in text


def test_unknown_neighbourhoods_alone_show_nothing() -> None:
    text = summary(EN, SQUARE, results({UNKNOWN: CELL}), final=True)
    assert "By neighbourhood" not in text and PROTECTED not in text
