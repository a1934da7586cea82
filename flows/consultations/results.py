"""Results as people read them: a short message with the figures, a chart per question, a
CSV file; posted to the organiser and the council's group; each respondent hears back."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flows import spreadsheet
from flows.broadcasts import service as broadcasts
from flows.consultations import sheet
from flows.consultations.service import (
    OTHER,
    UNKNOWN,
    participant_places,
    participants,
    participants_in,
)
from flows.consultations.sheet import share
from flows.engine import Attachment, Notice, NoticeKind, Reply
from flows.i18n import Translator
from flows.spreadsheet import Reader, Sheet
from storage.models import Consultation, Council, Priority, QuestionKind
from storage.queries import outbox

Results = Mapping[str, Any]
MESSAGE_LIMIT = 4000
TEXTS_SHOWN = 3


def place_label(t: Translator, place: str) -> str:
    if place == OTHER:
        return t._("Other neighbourhoods")
    if place == UNKNOWN:
        return t._("Neighbourhood not given")
    return place


def headline(t: Translator, question: Mapping[str, Any], cell: Mapping[str, Any]) -> str | None:
    """The main figure of a group: the most chosen option with its share, or the mean."""
    if question["kind"] == QuestionKind.SCALE:
        mean = cell["mean"]
        return None if mean is None else t._("{mean} out of 5").format(mean=t.decimal(mean))
    counts = cell["counts"]
    if not counts or not cell["answered"] or max(counts) == 0:
        return None
    best = counts.index(max(counts))
    return t._("“{option}” {share}").format(
        option=question["options"][best], share=t.percent(share(counts[best], cell["answered"]))
    )


def rate_line(t: Translator, results: Results) -> str:
    respondents, audience = int(results["respondents"]), int(results["audience"])
    line = t.ngettext(
        "{count} of {audience} answered", "{count} of {audience} answered", respondents
    ).format(count=t.number(respondents), audience=t.number(audience))
    if audience:
        line += f" ({t.percent(share(respondents, audience))})"
    return line + "."


def aside_lines(t: Translator, results: Results) -> list[str]:
    """How many answers of unverified members were left out of the figures (none: nothing)."""
    aside = int(results.get("unverified_aside", 0))
    if not aside:
        return []
    return [
        t.ngettext(
            "{count} unverified answer left aside.", "{count} unverified answers left aside.", aside
        ).format(count=t.number(aside))
    ]


def summary(t: Translator, consultation: Consultation, results: Results, final: bool) -> str:
    """The figures in a few lines per question."""
    title = (t._("Results — {title}") if final else t._("Results so far — {title}")).format(
        title=consultation.title
    )
    lines = ["📊 " + title, rate_line(t, results), *aside_lines(t, results)]
    if results.get("withheld"):
        threshold = int(results["threshold"])
        lines.append(
            t.ngettext(
                "The figures show once {count} person has answered, so that no one's answers "
                "can be told apart.",
                "The figures show once {count} people have answered, so that no one's answers "
                "can be told apart.",
                threshold,
            ).format(count=t.number(threshold))
        )
    for number, question in enumerate(results["questions"], start=1):
        whole = question["all"]
        lines += ["", f"{number}. {question['text']}"]
        if question["kind"] == QuestionKind.TEXT:
            texts = question["texts"]
            lines.append(
                t.ngettext("{count} answer", "{count} answers", len(texts)).format(
                    count=t.number(len(texts))
                )
            )
            lines += ["• " + t._("“{text}”").format(text=text) for text in texts[:TEXTS_SHOWN]]
            continue
        if question["kind"] == QuestionKind.SCALE and whole["mean"] is not None:
            lines.append(t._("Average: {mean} out of 5").format(mean=t.decimal(whole["mean"])))
        for label, count in zip(question["options"], whole["counts"], strict=True):
            lines.append(
                f"• {label}: {t.number(count)} ({t.percent(share(count, whole['answered']))})"
            )
        lines += neighbourhood_lines(t, question)
    text = "\n".join(lines)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


def neighbourhood_lines(t: Translator, question: Mapping[str, Any]) -> list[str]:
    """The main figure per neighbourhood, when one at least is shown by name: merged small
    ones or unknown ones alone say nothing, so then it is said why there are none."""
    groups = question["by_neighbourhood"]
    places = [
        f"{place_label(t, place)} {figure}"
        for place, cell in groups.items()
        if (figure := headline(t, question, cell)) is not None
    ]
    named = any(place not in (OTHER, UNKNOWN) for place in groups)
    if named and places:
        return [t._("By neighbourhood: {figures}").format(figures=" · ".join(places))]
    if not named and OTHER in groups:
        return [t._("Results by neighbourhood are not shown, to protect small groups.")]
    return []


def table(t: Translator, results: Results) -> bytes:
    """The figures as CSV, in the reader's language and conventions (`flows.spreadsheet`):
    one row per question, group and option; free texts at the end."""
    return spreadsheet.csv_bytes(Sheet(sheet.COLUMNS, sheet.rows(results)), Reader(t))


def chart_files(t: Translator, results: Results) -> list[Attachment]:
    """One chart per question with options or a scale (slow: run it in a thread)."""
    # Matplotlib takes about a second to load: only a process that draws a chart loads it.
    from flows.consultations import charts

    files = []
    for number, question in enumerate(results["questions"], start=1):
        if question["kind"] == QuestionKind.TEXT:
            continue
        whole = question["all"]
        bars = [
            charts.Bar(label, count, share(count, whole["answered"]))
            for label, count in zip(question["options"], whole["counts"], strict=True)
        ]
        footnote = t.ngettext(
            "{count} respondent", "{count} respondents", whole["answered"]
        ).format(count=t.number(whole["answered"]))
        if question["kind"] == QuestionKind.SCALE and whole["mean"] is not None:
            footnote += " · " + t._("Average: {mean} out of 5").format(
                mean=t.decimal(whole["mean"])
            )
        png = charts.render(f"{number}. {question['text']}", bars, footnote, t.locale)
        files.append(Attachment(f"question-{number}.png", png, "image/png", kind="photo"))
    return files


async def post(
    session: AsyncSession,
    consultation: Consultation,
    council: Council,
    results: Results,
    *,
    final: bool = True,
    to_group: bool = True,
) -> None:
    """The figures, the charts and the CSV, to the organiser and the council's group."""
    places: list[tuple[str, str, str, str]] = []
    if consultation.organiser_chat and consultation.organiser_channel:
        places.append(
            (
                "organiser",
                consultation.organiser_channel,
                consultation.organiser_chat,
                consultation.organiser_locale,
            )
        )
    if to_group and council.group_chat_id and council.group_channel:
        places.append(("group", council.group_channel, council.group_chat_id, council.locale))
    for who, channel, chat_id, locale in places:
        replies = await result_replies(Translator(locale), consultation, results, final)
        for index, reply in enumerate(replies):
            await outbox.enqueue_one(
                session,
                channel=channel,
                chat_id=chat_id,
                payload=broadcasts.to_payload(reply),
                priority=Priority.REPORT,
                council_id=council.id,
                key=f"results:{consultation.id}:{who}:{index}" if final else None,
            )


async def result_replies(
    t: Translator, consultation: Consultation, results: Results, final: bool
) -> list[Reply]:
    """The message, a chart per question (drawn in a worker thread) and the CSV file."""
    replies = [Reply(summary(t, consultation, results, final))]
    if results.get("withheld"):
        return replies
    files = await asyncio.to_thread(chart_files, t, results)
    replies += [
        Reply(f"{consultation.title} — {file.filename.removesuffix('.png')}", attachment=file)
        for file in files
    ]
    csv_file = Attachment(f"consultation-{consultation.id}.csv", table(t, results), "text/csv")
    replies.append(Reply(t._("All the figures, for a spreadsheet."), attachment=csv_file))
    return replies


def hear_back_render(
    council: Council, consultation: Consultation, results: Results, place: str | None
) -> broadcasts.Render:
    """ "Here is what your neighbourhood said": their neighbourhood beside everyone."""

    def render(t: Translator) -> Reply:
        lines = [
            "📊 " + t._("What your neighbourhood said — {title}").format(title=consultation.title),
            rate_line(t, results),
            *aside_lines(t, results),
            t._("Thank you for taking part!"),
        ]
        for number, question in enumerate(results["questions"], start=1):
            if question["kind"] == QuestionKind.TEXT:
                continue
            overall = headline(t, question, question["all"])
            if overall is None:
                continue
            cell = question["by_neighbourhood"].get(place) if place else None
            local = headline(t, question, cell) if cell else None
            lines += ["", f"{number}. {question['text']}"]
            if local is not None and place is not None:
                lines.append(f"• {place}: {local}")
            lines.append("• " + t._("Everyone: {figure}").format(figure=overall))
        about = Notice(NoticeKind.RESULTS, t.locale, council=council.name, title=consultation.title)
        return Reply("\n".join(lines), notice=about)

    return render


async def hear_back(
    session: AsyncSession, consultation: Consultation, council: Council, results: Results
) -> None:
    """Each respondent gets the main figures, their own neighbourhood beside the whole."""
    for place in await participant_places(session, consultation.id):
        await broadcasts.start_broadcast(
            session,
            council=council,
            kind="consultation-results",
            subject=f"consultation:{consultation.id}",
            audience=participants_in(consultation.id, place),
            render=hear_back_render(council, consultation, results, place),
        )


async def follow_up(
    session: AsyncSession, consultation: Consultation, council: Council, text: str
) -> int:
    """ "What we did with your answers", from the organiser to everyone who took part."""

    def render(t: Translator) -> Reply:
        head = t._("What we did with your answers — {title}").format(title=consultation.title)
        about = Notice(NoticeKind.NEWS, t.locale, council=council.name, title=head)
        return Reply(f"💬 {head}\n\n{text}", notice=about)

    broadcast = await broadcasts.start_broadcast(
        session,
        council=council,
        kind="consultation-follow-up",
        subject=f"consultation:{consultation.id}",
        audience=participants(consultation.id),
        render=render,
    )
    return broadcast.audience_size
