"""A consultation's figures as a spreadsheet's table: one row per question, group and
option, then the free texts; the file sent in chat with the results and the rows of
`coupdepouce export consultations`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flows.consultations.service import OTHER, UNKNOWN
from flows.i18n import N_
from flows.spreadsheet import Column

EVERYONE = "*all*"  # the group of all respondents
GROUP_LABELS = {
    EVERYONE: N_("Everyone"),
    OTHER: N_("Other neighbourhoods"),
    UNKNOWN: N_("Neighbourhood not given"),
}
COLUMNS = (
    Column("question", N_("Question")),
    Column("group", N_("Group"), GROUP_LABELS),  # a neighbourhood's name is its own label
    Column("option", N_("Option")),
    Column("answers", N_("Answers")),
    Column("share", N_("Share"), digits=3),
    Column("respondents", N_("Respondents")),
    Column("average", N_("Average"), digits=2),
)


def share(count: int, answered: int) -> float:
    return count / answered if answered else 0.0


def rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The figures, everyone's first then each neighbourhood's; a free text is a row of its
    own, in the everyone group, with no figures."""
    found: list[dict[str, Any]] = []
    for number, question in enumerate(results["questions"], start=1):
        asked = f"{number}. {question['text']}"
        groups = [(EVERYONE, question["all"]), *question["by_neighbourhood"].items()]
        for group, cell in groups:
            for label, count in zip(question["options"], cell["counts"], strict=False):
                found.append(
                    {
                        "question": asked,
                        "group": group,
                        "option": label,
                        "answers": count,
                        "share": share(count, cell["answered"]),
                        "respondents": cell["answered"],
                        "average": cell.get("mean"),
                    }
                )
        found += [
            {"question": asked, "group": EVERYONE, "option": text} for text in question["texts"]
        ]
    return found
