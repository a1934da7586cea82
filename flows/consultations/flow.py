"""/consult and /results for organisers, answering for residents, /register in a group.

Writing: a one-line subject, one to five questions (one choice, several choices, a 1 to 5
scale, a short text), who is asked, anonymous or named, results shown to respondents as
they come or not, when it opens and closes; preview; send.
Answering: one question at a time in the same message, with Skip and Back; answers can be
changed until the deadline by tapping Answer again.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from flows import changes
from flows.broadcasts import service as broadcasts
from flows.broadcasts.preview import cost_line
from flows.changes import Part
from flows.consultations import dashboard, data, digest, export, jobs, results, service
from flows.consultations.buttons import AnswerButton, ConsultationButton, ConsultationOp
from flows.consultations.drafts import BallotDraft, ConsultationDraft
from flows.consultations.jobs import CLOSE_CONSULTATIONS, OPEN_CONSULTATIONS, Closing
from flows.consultations.service import Audience, Opened
from flows.engine import (
    END,
    Action,
    Choice,
    Command,
    Context,
    Export,
    Flow,
    GroupCommand,
    Inbound,
    Next,
    Option,
    Prompt,
    Reply,
    Step,
    StepName,
)
from flows.i18n import N_, Translator, typed_number
from flows.staff import (
    ORGANISING,
    coordinated,
    council_in_use,
    council_options,
    councils_coordinated,
    start_in_council,
)
from flows.talents import picker
from flows.verification.flow import HOW_TO_COUNT
from storage.models import (
    Ballot,
    Consultation,
    ConsultationStatus,
    Council,
    Question,
    QuestionKind,
    Role,
    utcnow,
)
from storage.queries import people, verified
from storage.queries.consultations import consultation_for_update


class ConsultStep(StepName):
    """/consult's questions, a resident's answers, and /results' follow-ups."""

    ANONYMOUS = "consult.anonymous"
    ANSWER = "consult.answer"
    AUDIENCE = "consult.audience"
    CHANGE = "consult.change"
    CONFIRM_CLOSE = "consult.confirm_close"
    COUNCIL = "consult.council"
    DEADLINE = "consult.deadline"
    FOLLOW_UP = "consult.follow_up"
    KIND = "consult.kind"
    LIVE = "consult.live"
    OPENS = "consult.opens"
    OPTIONS = "consult.options"
    PLACE = "consult.place"
    PREVIEW = "consult.preview"
    QUESTIONS = "consult.questions"
    SKILL_CATEGORY = "consult.skill_category"
    SKILLS = "consult.skills"
    TEXT = "consult.text"
    TITLE = "consult.title"
    WHERE = "consult.where"


KINDS = {
    QuestionKind.SINGLE: N_("One choice"),
    QuestionKind.MULTIPLE: N_("Several choices"),
    QuestionKind.SCALE: N_("A scale from 1 to 5"),
    QuestionKind.TEXT: N_("A short text"),
}
DEADLINES = {"2": N_("In 2 days"), "7": N_("In a week"), "14": N_("In two weeks")}
OPTION_LENGTH = 60
NOT_STAFF = N_("This command is for council coordinators and organisers.")
BROKEN_BUTTON = N_("Sorry, this button does not work.")
CLOSED = N_("This consultation is closed. Thank you all the same: this answer was not counted.")


def cancel_row(ctx: Context) -> list[Option]:
    return [Option("cancel", ctx._("Cancel"))]


# --- writing the consultation ------------------------------------------------------------------


async def new_consultation(ctx: Context) -> Next:
    ctx.drop(ConsultationDraft)
    return await start_in_council(
        ctx, ConsultationDraft, ConsultStep.TITLE, ConsultStep.COUNCIL, ORGANISING
    )


async def council(ctx: Context) -> Council | None:
    return await council_in_use(ctx, ConsultationDraft, ORGANISING)


async def ask_council(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Which council is this consultation for?"), await council_options(ctx, ORGANISING)
    )


async def handle_council(ctx: Context, value: str) -> Next:
    ctx.draft(ConsultationDraft).council_id = int(value)
    return ConsultStep.TITLE


async def cancel(ctx: Context, _value: str) -> Next:
    ctx.drop(ConsultationDraft)
    ctx.say(ctx._("Cancelled: nothing was sent."))
    return END


async def ask_title(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("A quick consultation: what is it about? One line residents read first."),
        [cancel_row(ctx)],
    )


async def handle_title(ctx: Context, text: str) -> Next:
    ctx.draft(ConsultationDraft).title = text
    return ConsultStep.KIND


def drafted(ctx: Context) -> list[service.NewQuestion]:
    return ctx.draft(ConsultationDraft).questions


def number_written(ctx: Context) -> int:
    """The number of the question being written: the next one, or the one written again."""
    rewriting = ctx.draft(ConsultationDraft).rewriting
    return (rewriting if rewriting is not None else len(drafted(ctx))) + 1


async def ask_kind(ctx: Context) -> Prompt:
    number = number_written(ctx)
    rows = [[Option(kind.value, ctx._(label))] for kind, label in KINDS.items()]
    if drafted(ctx) and not ctx.changing:
        rows.append([Option("enough", "✅ " + ctx._("No more questions"))])
    rows.append(cancel_row(ctx))
    return Prompt(
        ctx._("Question {number}: how do residents answer?").format(number=ctx.t.number(number)),
        rows,
    )


async def handle_kind(ctx: Context, value: str) -> Next:
    if value == "cancel":
        return await cancel(ctx, value)
    if value == "enough":
        return ConsultStep.AUDIENCE
    ctx.draft(ConsultationDraft).kind = QuestionKind(value)
    return ConsultStep.TEXT


async def ask_text(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Write question {number}.").format(number=ctx.t.number(number_written(ctx))),
        [cancel_row(ctx)],
    )


async def handle_text(ctx: Context, text: str) -> Next:
    draft = ctx.draft(ConsultationDraft)
    kind = draft.kind
    if kind in (QuestionKind.SINGLE, QuestionKind.MULTIPLE):
        draft.text = text
        return ConsultStep.OPTIONS
    return add_question(ctx, kind, text, [])


def add_question(ctx: Context, kind: QuestionKind, text: str, options: list[str]) -> Next:
    draft = ctx.draft(ConsultationDraft)
    written = service.NewQuestion(kind, text, options)
    if draft.rewriting is not None and draft.rewriting < len(draft.questions):
        draft.questions[draft.rewriting] = written
    else:
        draft.questions.append(written)
    draft.kind, draft.text, draft.rewriting = QuestionKind.SINGLE, "", None
    if ctx.changing:
        return ConsultStep.QUESTIONS
    return (
        ConsultStep.AUDIENCE if len(draft.questions) >= service.MAX_QUESTIONS else ConsultStep.KIND
    )


async def ask_options(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Write the choices, one per line (2 to {most}).").format(
            most=ctx.t.number(service.MAX_OPTIONS)
        ),
        [cancel_row(ctx)],
    )


async def handle_options(ctx: Context, text: str) -> Next:
    options = [line.strip(" -•*\t") for line in text.splitlines()]
    options = list(dict.fromkeys(o for o in options if o))
    if not 2 <= len(options) <= service.MAX_OPTIONS or any(len(o) > OPTION_LENGTH for o in options):
        ctx.say(
            ctx._(
                "Please write 2 to {most} choices, one per line, each under {length} characters."
            ).format(most=ctx.t.number(service.MAX_OPTIONS), length=ctx.t.number(OPTION_LENGTH))
        )
        return ConsultStep.OPTIONS
    draft = ctx.draft(ConsultationDraft)
    return add_question(ctx, draft.kind, draft.text, options)


async def ask_audience(ctx: Context) -> Prompt:
    found = await council(ctx)
    rows = [[Option(Audience.ALL.value, ctx._("Every member"))]]
    if found is not None and found.neighbourhoods:
        rows.append([Option(Audience.NEIGHBOURHOOD.value, ctx._("One neighbourhood"))])
    rows.append([Option(Audience.SKILLS.value, ctx._("Directory members with some skills"))])
    return Prompt(ctx._("Who is asked?"), rows)


async def handle_audience(ctx: Context, value: str) -> Next:
    ctx.draft(ConsultationDraft).audience = Audience(value)
    if value == Audience.NEIGHBOURHOOD:
        return ConsultStep.PLACE
    if value == Audience.SKILLS:
        return ConsultStep.SKILLS
    return ConsultStep.ANONYMOUS


async def ask_place(ctx: Context) -> Prompt:
    found = await council(ctx)
    places = found.neighbourhoods if found else []
    return Prompt(
        ctx._("Which neighbourhood?"), [[Option(str(i), p)] for i, p in enumerate(places)]
    )


async def handle_place(ctx: Context, value: str) -> Next:
    found = await council(ctx)
    if found is None or not value.isdigit() or int(value) >= len(found.neighbourhoods):
        return ConsultStep.PLACE
    ctx.draft(ConsultationDraft).place = found.neighbourhoods[int(value)]
    return ConsultStep.ANONYMOUS


async def skills_done(ctx: Context) -> Next:
    draft = ctx.draft(ConsultationDraft)
    if not draft.skills:
        draft.audience = Audience.ALL  # none ticked: everyone
    return ConsultStep.ANONYMOUS


async def ask_anonymous(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Anonymous answers, or with first names?"),
        [
            [Option("yes", ctx._("Anonymous (recommended)"))],
            [Option("no", ctx._("With first names"))],
        ],
    )


async def handle_anonymous(ctx: Context, value: str) -> Next:
    ctx.draft(ConsultationDraft).anonymous = value == "yes"
    return ConsultStep.LIVE


async def ask_live(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("May residents see the results so far once they have answered?"),
        [
            [Option("no", ctx._("No, only after closing (recommended)"))],
            [Option("yes", ctx._("Yes, as answers come"))],
        ],
    )


async def handle_live(ctx: Context, value: str) -> Next:
    ctx.draft(ConsultationDraft).live = value == "yes"
    return ConsultStep.OPENS


async def ask_opens(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("When does it open?"),
        [[Option("now", ctx._("Now"))], [Option("tomorrow", ctx._("Tomorrow at 9:00"))]],
    )


async def handle_opens(ctx: Context, value: str) -> Next:
    ctx.draft(ConsultationDraft).opens_tomorrow = value == "tomorrow"
    return ConsultStep.DEADLINE


def next_friday_evening(found: Council | None, now: datetime) -> datetime:
    zone = ZoneInfo(found.timezone if found else "Europe/Paris")
    local = now.astimezone(zone)
    days = (4 - local.weekday()) % 7 or 7
    friday = datetime.combine(local.date() + timedelta(days=days), time(18, 0), tzinfo=zone)
    return friday.astimezone(ZoneInfo("UTC"))


def opening(ctx: Context, found: Council | None, now: datetime) -> datetime:
    if not ctx.draft(ConsultationDraft).opens_tomorrow:
        return now
    zone = ZoneInfo(found.timezone if found else "Europe/Paris")
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(9, 0), tzinfo=zone).astimezone(ZoneInfo("UTC"))


async def ask_deadline(ctx: Context) -> Prompt:
    found = await council(ctx)
    now = utcnow()
    friday = next_friday_evening(found, now)
    rows = []
    if friday - opening(ctx, found, now) >= timedelta(days=1):
        label = ctx._("On {day} at 18:00").format(
            day=ctx.t.day(friday, found.timezone if found else "Europe/Paris", "EEEE d MMMM")
        )
        rows.append([Option("friday", label)])
    rows += [[Option(key, ctx._(label))] for key, label in DEADLINES.items()]
    return Prompt(ctx._("Until when can residents answer?"), rows)


async def handle_deadline(ctx: Context, value: str) -> Next:
    ctx.draft(ConsultationDraft).days = value
    return ConsultStep.PREVIEW


def consultation_written(ctx: Context, found: Council | None) -> service.NewConsultation:
    """The consultation as written so far."""
    draft = ctx.draft(ConsultationDraft)
    now = utcnow()
    opens = opening(ctx, found, now)
    days = draft.days
    closes = (
        next_friday_evening(found, now)
        if days == "friday"
        else opens + timedelta(days=int(days) if days.isdigit() else 7)
    )
    return service.NewConsultation(
        title=draft.title,
        questions=list(draft.questions),
        opens_at=opens,
        closes_at=closes,
        audience=draft.audience,
        neighbourhood=draft.place,
        skill_ids=list(draft.skills),
        anonymous=draft.anonymous,
        live_results=draft.live,
        counts_unverified=draft.everyone,
    )


def kind_label(ctx: Context, kind: QuestionKind) -> str:
    return ctx._(KINDS[kind])


async def ask_preview(ctx: Context) -> Prompt:
    found = await council(ctx)
    if found is None:
        return Prompt(ctx._(NOT_STAFF))
    new = consultation_written(ctx, found)
    reach = await service.reach(ctx.session, found, new)
    if reach == 0:
        return Prompt(
            ctx._("Nobody would be asked. Change who is asked, or cancel."),
            [
                [Option("audience", ctx._("Change who is asked")), changes.option(ctx)],
                cancel_row(ctx),
            ],
        )
    preview = Consultation(
        id=0,
        title=new.title,
        anonymous=new.anonymous,
        closes_at=new.closes_at,
        opens_at=new.opens_at,
    )
    shown = service.invitation(found, preview, len(new.questions))(ctx.t).text
    head = ctx.ngettext(
        "Preview: this consultation will go to {count} resident.",
        "Preview: this consultation will go to {count} residents.",
        reach,
    ).format(count=ctx.t.number(reach))
    cost = await cost_line(
        ctx, service.audience(found, new.audience, new.neighbourhood, new.skill_ids)
    )
    lines = [head, *([cost] if cost else []), "", shown, ""]
    for number, question in enumerate(new.questions, start=1):
        lines.append(f"{number}. {question.text} ({kind_label(ctx, question.kind)})")
        lines += [f"   • {option}" for option in question.options]
    if new.opens_at > utcnow():
        lines += [
            "",
            ctx._("Opens {date}.").format(date=ctx.t.moment(new.opens_at, found.timezone)),
        ]
    if new.counts_unverified:
        lines += ["", ctx._("Counted: everyone's answers, verified members or not.")]
        counting = Option("verified", ctx._("Count only verified members (recommended)"))
    else:
        lines += [
            "",
            ctx._(
                "Counted: only verified members' answers (a code from the council, Telegram or "
                "WhatsApp). Others are told how to get verified."
            ),
        ]
        counting = Option("everyone", ctx._("Count everyone"))
    return Prompt(
        "\n".join(lines),
        [
            [Option("send", ctx._("Send")), changes.option(ctx)],
            [counting],
            cancel_row(ctx),
        ],
    )


async def handle_preview(ctx: Context, value: str) -> Next:
    if value == "cancel":
        return await cancel(ctx, value)
    if value == changes.CHANGE:
        return ConsultStep.CHANGE
    if value == "audience":
        return await changes.start(ctx, AUDIENCE, ConsultStep.PREVIEW)
    if value in ("everyone", "verified"):
        ctx.draft(ConsultationDraft).everyone = value == "everyone"
        return ConsultStep.PREVIEW
    found = await council(ctx)
    if found is None:
        ctx.drop(ConsultationDraft)
        ctx.say(ctx._(NOT_STAFF))
        return END
    new = consultation_written(ctx, found)
    if not new.questions:
        return ConsultStep.KIND
    report_to = broadcasts.ReportTo(ctx.inbound.channel, ctx.inbound.chat_id, ctx.t.locale)
    consultation = await service.create(ctx.session, found, new, ctx.person, report_to)
    ctx.drop(ConsultationDraft)
    if consultation.status is ConsultationStatus.OPEN:
        ctx.say(ctx._("On its way. Follow the answers with /results."))
    else:
        ctx.say(
            ctx._("Saved: it opens {date}. Follow it with /results.").format(
                date=ctx.t.moment(consultation.opens_at, found.timezone)
            )
        )
    return END


async def ask_questions(ctx: Context) -> Prompt:
    """The questions written so far, each to write again or remove, and one to add."""
    questions = drafted(ctx)
    lines = [ctx._("Which question?")]
    rows: list[list[Option]] = []
    for index, question in enumerate(questions):
        number = ctx.t.number(index + 1)
        lines.append(f"{number}. {question.text} ({kind_label(ctx, question.kind)})")
        row = [Option(f"rewrite:{index}", "✏️ " + ctx._("Rewrite {number}").format(number=number))]
        if len(questions) > 1:
            row.append(
                Option(f"remove:{index}", "🗑 " + ctx._("Remove {number}").format(number=number))
            )
        rows.append(row)
    if len(questions) < service.MAX_QUESTIONS:
        rows.append([Option("add", ctx._("Add a question"))])
    rows.append([Option(picker.DONE, picker.TICK + ctx._("Done"))])
    return Prompt("\n".join(lines), rows)


async def handle_questions(ctx: Context, value: str) -> Next:
    draft = ctx.draft(ConsultationDraft)
    action, _, index = value.partition(":")
    if action == "add":
        draft.rewriting = None
        return ConsultStep.KIND
    if action == "rewrite":
        draft.rewriting = int(index)
        return ConsultStep.KIND
    if action == "remove" and len(draft.questions) > 1:
        del draft.questions[int(index)]
        return ConsultStep.QUESTIONS
    return ConsultStep.PREVIEW


AUDIENCE = Part(
    "audience",
    N_("Who is asked"),
    (ConsultStep.AUDIENCE, ConsultStep.PLACE, ConsultStep.SKILLS, ConsultStep.SKILL_CATEGORY),
)
PARTS = (
    Part(
        "title",
        N_("The subject"),
        (ConsultStep.TITLE,),
        now=lambda ctx: ctx.draft(ConsultationDraft).title,
    ),
    Part(
        "questions",
        N_("The questions"),
        (ConsultStep.QUESTIONS, ConsultStep.KIND, ConsultStep.TEXT, ConsultStep.OPTIONS),
    ),
    AUDIENCE,
    Part("anonymous", N_("Anonymous or with first names"), (ConsultStep.ANONYMOUS,)),
    Part("live", N_("Results seen while it is open"), (ConsultStep.LIVE,)),
    Part("opens", N_("When it opens"), (ConsultStep.OPENS,)),
    Part("deadline", N_("Until when residents answer"), (ConsultStep.DEADLINE,)),
)


# --- residents answering -----------------------------------------------------------------------


async def start_answering(ctx: Context, button: AnswerButton) -> None:
    """The "Answer" button of an invitation (its id is checked, not trusted)."""
    assert ctx.person is not None
    consultation = await ctx.session.get(Consultation, button.consultation_id)
    if consultation is None or not await service.may_answer(ctx.session, consultation, ctx.person):
        ctx.toast = ctx._(BROKEN_BUTTON)
        return
    if await service.is_open(consultation) is not Opened.OK:
        ctx.say(ctx._(CLOSED))
        return
    await service.ballot_for(ctx.session, consultation, ctx.person)
    ctx.drop(BallotDraft)
    ctx.draft(BallotDraft).consultation_id = consultation.id
    await ctx.engine.go(ctx, ConsultStep.ANSWER)


async def answering(ctx: Context) -> tuple[Consultation, Ballot, list[Question], int] | None:
    """The consultation being answered, if it is still open (loaded once per tap: the
    handler and the next question share it)."""
    if ctx.person is None:
        return None
    loaded = ctx.memo.get("consultation")
    if loaded is None:
        consultation = await ctx.session.get(Consultation, ctx.draft(BallotDraft).consultation_id)
        if consultation is None or await service.is_open(consultation) is not Opened.OK:
            return None
        ballot = await service.ballot_for(ctx.session, consultation, ctx.person)
        questions = await service.questions_of(ctx.session, consultation.id)
        loaded = ctx.memo["consultation"] = (consultation, ballot, questions)
    consultation, ballot, questions = loaded
    # What one answers an anonymous consultation is not kept in the conversation either.
    ctx.off_the_record = consultation.anonymous
    index = min(ctx.draft(BallotDraft).question, len(questions) - 1)
    return consultation, ballot, questions, index


async def ask_answer(ctx: Context) -> Prompt:
    current = await answering(ctx)
    if current is None:
        return Prompt(ctx._(CLOSED))
    _consultation, ballot, questions, index = current
    question = questions[index]
    options, text = await service.given(ctx.session, ballot, question)
    ticked = ctx.draft(BallotDraft).ticked
    chosen = set(options if ticked is None else ticked)
    head = f"{ctx.t.number(index + 1)}/{ctx.t.number(len(questions))} · {question.text}"
    rows: list[list[Option]] = []
    if question.kind is QuestionKind.SCALE:
        rows.append(
            [
                Option(f"o{v}", ("✅" if v in chosen else "") + ctx.t.number(v))
                for v in service.SCALE
            ]
        )
        head += "\n" + ctx._("1 = not at all, 5 = very much")
    elif question.kind is QuestionKind.TEXT:
        head += "\n" + ctx._("Write your answer (up to {limit} characters).").format(
            limit=ctx.t.number(service.TEXT_LIMIT)
        )
        if text:
            head += "\n" + ctx._("Your answer: {text}").format(text=text)
    else:
        rows += [
            [Option(f"o{i}", (picker.TICK if i in chosen else "") + label)]
            for i, label in enumerate(question.options)
        ]
        if question.kind is QuestionKind.MULTIPLE:
            head += "\n" + ctx._("Tick all that apply, then Done.")
            rows.append([Option("done", picker.TICK + ctx._("Done"))])
    last = [Option("skip", ctx.t.skip)]
    if index > 0:
        last.insert(0, Option("back", ctx.t.back))
    rows.append(last)
    return Prompt(head, rows)


async def handle_answer_choice(ctx: Context, value: str) -> Next:
    current = await answering(ctx)
    if current is None:
        return await too_late(ctx)
    assert ctx.person is not None  # answering() has checked
    _consultation, ballot, questions, index = current
    question = questions[index]
    if value == "back":
        ballot_draft = ctx.draft(BallotDraft)
        ballot_draft.question, ballot_draft.ticked = max(index - 1, 0), None
        return ConsultStep.ANSWER
    if value == "skip":
        await service.record(ctx.session, ctx.person, ballot, question)
        return await next_question(ctx, index, len(questions))
    if value == "done":
        ticked = ctx.draft(BallotDraft).ticked
        if ticked is not None:
            await service.record(ctx.session, ctx.person, ballot, question, list(ticked))
        return await next_question(ctx, index, len(questions))
    option = int(value[1:])
    if question.kind is QuestionKind.MULTIPLE:
        ticked = ctx.draft(BallotDraft).ticked
        before = (
            set(ticked)
            if ticked is not None
            else set((await service.given(ctx.session, ballot, question))[0])
        )
        ctx.draft(BallotDraft).ticked = sorted(before ^ {option})
        return ConsultStep.ANSWER
    await service.record(ctx.session, ctx.person, ballot, question, [option])
    return await next_question(ctx, index, len(questions))


async def handle_answer_text(ctx: Context, text: str) -> Next:
    current = await answering(ctx)
    if current is None:
        return await too_late(ctx)
    assert ctx.person is not None  # answering() has checked
    _consultation, ballot, questions, index = current
    question = questions[index]
    typed = typed_number(text)
    if question.kind is QuestionKind.SCALE and typed in service.SCALE:
        await service.record(ctx.session, ctx.person, ballot, question, [typed])
        return await next_question(ctx, index, len(questions))
    if question.kind is not QuestionKind.TEXT:
        ctx.say(ctx._("Please answer with the buttons below."))
        return ConsultStep.ANSWER
    await service.record(ctx.session, ctx.person, ballot, question, text=text)
    return await next_question(ctx, index, len(questions))


async def too_late(ctx: Context) -> Next:
    ctx.drop(BallotDraft)
    ctx.say(ctx._(CLOSED))
    return END


async def next_question(ctx: Context, index: int, count: int) -> Next:
    if index + 1 < count:
        ballot_draft = ctx.draft(BallotDraft)
        ballot_draft.question, ballot_draft.ticked = index + 1, None
        return ConsultStep.ANSWER
    consultation = await ctx.session.get_one(Consultation, ctx.draft(BallotDraft).consultation_id)
    found = await ctx.session.get_one(Council, consultation.council_id)
    assert ctx.person is not None
    if (
        found.neighbourhoods
        and (await service.neighbourhood_of(ctx.session, found.id, ctx.person.id)) is None
        and not await said_nothing(ctx, found)
    ):
        return ConsultStep.WHERE
    return await finish(ctx, consultation, found)


async def said_nothing(ctx: Context, found: Council) -> bool:
    """They chose not to say where they live (stored as an empty neighbourhood)."""
    assert ctx.person is not None
    membership = await people.membership(ctx.session, ctx.person, found)
    return membership is not None and membership.neighbourhood == ""


async def finish(ctx: Context, consultation: Consultation, found: Council) -> Next:
    ctx.drop(BallotDraft)
    ctx.say(
        ctx._(
            "Thank you! Your answers are saved. You can change them until {date}: "
            "tap “Answer” again."
        ).format(date=ctx.t.moment(consultation.closes_at, found.timezone))
    )
    assert ctx.person is not None
    if not consultation.counts_unverified and not await verified.verified(
        ctx.session, ctx.person.id
    ):
        ctx.say(
            ctx._(
                "Your answers are recorded, but they will count once you are a verified member "
                "(so that each person counts once)."
            )
            + " "
            + ctx._(HOW_TO_COUNT)
        )
    if consultation.live_results:
        figures = await service.figures(ctx.session, consultation, found)
        if figures is not None:
            ctx.say(results.summary(ctx.t, consultation, figures, final=False))
    return END


async def ask_where(ctx: Context) -> Prompt:
    consultation = await ctx.session.get_one(Consultation, ctx.draft(BallotDraft).consultation_id)
    found = await ctx.session.get_one(Council, consultation.council_id)
    rows = [[Option(str(i), place)] for i, place in enumerate(found.neighbourhoods)]
    rows.append([Option("none", ctx._("I'd rather not say"))])
    return Prompt(
        ctx._("One last thing, for the results by neighbourhood: where do you live?"), rows
    )


async def handle_where(ctx: Context, value: str) -> Next:
    assert ctx.person is not None
    consultation = await ctx.session.get(Consultation, ctx.draft(BallotDraft).consultation_id)
    if consultation is None:
        return END
    found = await ctx.session.get_one(Council, consultation.council_id)
    place = ""
    if value.isdigit() and int(value) < len(found.neighbourhoods):
        place = found.neighbourhoods[int(value)]
    await service.set_neighbourhood(ctx.session, found, ctx.person, place or "")
    return await finish(ctx, consultation, found)


# --- organisers following their consultations --------------------------------------------------


async def list_results(ctx: Context) -> Next:
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin, ORGANISING
    )
    found = await service.consultations_of(
        ctx.session, [c.id for c in allowed], utcnow() - timedelta(days=30)
    )
    if not found:
        ctx.say(ctx._("No consultations yet. Ask one with /consult."))
        return END
    by_id = {c.id: c for c in allowed}
    for consultation in found:
        ctx.replies.append(await card(ctx, consultation, by_id[consultation.council_id]))
    return END


async def card(ctx: Context, consultation: Consultation, found: Council) -> Reply:
    zone = found.timezone
    lines = [consultation.title]
    if consultation.status is ConsultationStatus.SCHEDULED:
        lines.append(ctx._("Opens {date}.").format(date=ctx.t.moment(consultation.opens_at, zone)))
    elif consultation.status is ConsultationStatus.OPEN:
        lines.append(
            ctx._("Open until {date}.").format(date=ctx.t.moment(consultation.closes_at, zone))
        )
        figures = await service.figures(ctx.session, consultation, found)
        assert figures is not None  # open
        lines.append(results.rate_line(ctx.t, figures))
        lines += results.aside_lines(ctx.t, figures)
    elif consultation.results is not None:
        lines.append(ctx._("Closed."))
        lines.append(results.rate_line(ctx.t, consultation.results))
        lines += results.aside_lines(ctx.t, consultation.results)

    def button(label: str, op: ConsultationOp) -> Choice:
        return Choice(label, ConsultationButton(consultation.id, op).pack())

    rows: list[tuple[Choice, ...]] = []
    if consultation.status is not ConsultationStatus.SCHEDULED:
        rows.append((button("📊 " + ctx._("See the results"), ConsultationOp.SEE),))
    if consultation.status is ConsultationStatus.OPEN:
        rows.append((button("⏹ " + ctx._("Close now"), ConsultationOp.CLOSE),))
    if consultation.status is ConsultationStatus.CLOSED and consultation.followed_up_at is None:
        rows.append((button("💬 " + ctx._("Tell them what we did"), ConsultationOp.FOLLOW),))
    return Reply("\n".join(lines), tuple(rows))


async def organiser_action(ctx: Context, button: ConsultationButton) -> None:
    """A button on a consultation's card: checked against the sender's roles in its council."""
    consultation = await ctx.session.get(Consultation, button.consultation_id)
    found = None
    if consultation is not None:
        found = await coordinated(
            ctx.session,
            ctx.inbound.channel,
            ctx.inbound.sender_id,
            ctx.is_admin,
            consultation.council_id,
            ORGANISING,
        )
    if consultation is None or found is None:
        ctx.toast = ctx._(BROKEN_BUTTON)
        return
    op = button.op
    if op is ConsultationOp.SEE and consultation.status is not ConsultationStatus.SCHEDULED:
        final = consultation.status is ConsultationStatus.CLOSED
        figures = await service.figures(ctx.session, consultation, found)
        if figures is not None:
            ctx.replies += await results.result_replies(ctx.t, consultation, figures, final)
        return
    if op is ConsultationOp.CLOSE and consultation.status is ConsultationStatus.OPEN:
        ctx.draft(ConsultationDraft).edit_id = consultation.id
        await ctx.engine.go(ctx, ConsultStep.CONFIRM_CLOSE)
        return
    if op is ConsultationOp.FOLLOW and consultation.status is ConsultationStatus.CLOSED:
        ctx.draft(ConsultationDraft).edit_id = consultation.id
        await ctx.engine.go(ctx, ConsultStep.FOLLOW_UP)
        return
    ctx.say(ctx._("This consultation can no longer be changed."))


async def edited(ctx: Context) -> tuple[Consultation, Council] | None:
    consultation = await ctx.session.get(Consultation, ctx.draft(ConsultationDraft).edit_id)
    if consultation is None:
        return None
    found = await coordinated(
        ctx.session,
        ctx.inbound.channel,
        ctx.inbound.sender_id,
        ctx.is_admin,
        consultation.council_id,
        ORGANISING,
    )
    return None if found is None else (consultation, found)


async def ask_confirm_close(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Close it now? Nobody can answer after that; results go out at once."),
        [[Option("yes", ctx._("Yes, close it")), Option("no", ctx._("No, leave it open"))]],
    )


async def handle_confirm_close(ctx: Context, value: str) -> Next:
    current = await edited(ctx)
    ctx.draft(ConsultationDraft).edit_id = 0
    if value != "yes":
        ctx.say(ctx._("Alright, nothing changed."))
        return END
    if current is None:
        ctx.say(ctx._(NOT_STAFF))
        return END
    consultation, _found = current
    # Locked and read again: if its deadline closed it meanwhile, its results went out then.
    if await jobs.close_now(ctx.session, consultation.id, utcnow()) is Closing.NOT_OPEN:
        ctx.say(ctx._("This consultation can no longer be changed."))
        return END
    ctx.say(ctx._("Closed. The results are on their way."))
    return END


async def ask_follow_up(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Write what the council did with the answers: it goes to everyone who took part."),
        [cancel_row(ctx)],
    )


async def handle_follow_up(ctx: Context, text: str) -> Next:
    current = await edited(ctx)
    ctx.draft(ConsultationDraft).edit_id = 0
    if current is None:
        ctx.say(ctx._(NOT_STAFF))
        return END
    consultation, found = current
    # Locked and read again, so that two taps (or two organisers) send it once.
    locked = await consultation_for_update(ctx.session, consultation.id)
    if locked is None or locked.followed_up_at is not None:
        ctx.say(ctx._("This consultation can no longer be changed."))
        return END
    consultation = locked
    count = await results.follow_up(ctx.session, consultation, found, text)
    consultation.followed_up_at = utcnow()
    ctx.say(
        ctx.ngettext("Sent to {count} participant.", "Sent to {count} participants.", count).format(
            count=ctx.t.number(count)
        )
    )
    return END


async def cancel_follow_up(ctx: Context, _value: str) -> Next:
    ctx.draft(ConsultationDraft).edit_id = 0
    ctx.say(ctx._("Alright, nothing changed."))
    return END


# --- the council's group chat ------------------------------------------------------------------


async def register_group(
    session: AsyncSession, inbound: Inbound, t: Translator, is_admin: bool
) -> str | None:
    """/register in a group, by a coordinator: results and digests are posted there."""
    allowed = await councils_coordinated(
        session, inbound.channel, inbound.sender_id, is_admin, frozenset({Role.COORDINATOR})
    )
    if inbound.argument:
        allowed = [c for c in allowed if c.slug == inbound.argument.strip().lower()]
    if not allowed:
        return t._("Only a coordinator of the council can register this group.")
    if len(allowed) > 1:
        return t._("Which council? Send /register followed by its short name: {names}").format(
            names=", ".join(c.slug for c in allowed)
        )
    found = await session.get_one(Council, allowed[0].id)
    found.group_channel = inbound.channel
    found.group_chat_id = inbound.chat_id
    if found.digest_days and found.next_digest_at is None:
        found.next_digest_at = utcnow() + timedelta(days=found.digest_days)
    t = Translator(found.locale)
    return t._(
        "This group now receives the results of {council}'s consultations and its digest."
    ).format(council=found.name)


FLOW = Flow(
    name="consultations",
    drafts=[ConsultationDraft, BallotDraft],
    exports=[
        Export(
            "consultations",
            N_("Consultations and their figures"),
            ORGANISING,
            export.consultations,
            export.rows,
            export.COLUMNS,
        )
    ],
    personal_data=[data.ANSWERS, data.ORGANISED],
    digest=[digest.SECTION],
    dashboard=[dashboard.CONSULTATIONS],
    on_join=service.invite_newcomer,
    steps=[
        Step(ConsultStep.COUNCIL, ask_council, on_choice=handle_council),
        Step(
            ConsultStep.TITLE,
            ask_title,
            on_choice=cancel,
            on_text=handle_title,
            max_text_length=200,
        ),
        Step(ConsultStep.KIND, ask_kind, on_choice=handle_kind),
        Step(
            ConsultStep.TEXT, ask_text, on_choice=cancel, on_text=handle_text, max_text_length=300
        ),
        Step(
            ConsultStep.OPTIONS,
            ask_options,
            on_choice=cancel,
            on_text=handle_options,
            max_text_length=1000,
        ),
        Step(ConsultStep.AUDIENCE, ask_audience, on_choice=handle_audience),
        Step(ConsultStep.PLACE, ask_place, on_choice=handle_place),
        *picker.skill_steps(
            ConsultStep.SKILLS,
            draft=ConsultationDraft,
            category_step=ConsultStep.SKILL_CATEGORY,
            question=N_("Which skills? Members of the directory with one of them are asked."),
            on_done=skills_done,
        ),
        Step(ConsultStep.ANONYMOUS, ask_anonymous, on_choice=handle_anonymous),
        Step(ConsultStep.LIVE, ask_live, on_choice=handle_live),
        Step(ConsultStep.OPENS, ask_opens, on_choice=handle_opens),
        Step(ConsultStep.DEADLINE, ask_deadline, on_choice=handle_deadline),
        Step(ConsultStep.PREVIEW, ask_preview, on_choice=handle_preview),
        changes.menu(ConsultStep.CHANGE, ConsultStep.PREVIEW, PARTS),
        Step(ConsultStep.QUESTIONS, ask_questions, on_choice=handle_questions),
        Step(
            ConsultStep.ANSWER,
            ask_answer,
            on_choice=handle_answer_choice,
            on_text=handle_answer_text,
            max_text_length=service.TEXT_LIMIT,
            in_place=True,
        ),
        Step(ConsultStep.WHERE, ask_where, on_choice=handle_where, in_place=True),
        Step(ConsultStep.CONFIRM_CLOSE, ask_confirm_close, on_choice=handle_confirm_close),
        Step(
            ConsultStep.FOLLOW_UP,
            ask_follow_up,
            on_choice=cancel_follow_up,
            on_text=handle_follow_up,
            max_text_length=1000,
        ),
    ],
    commands=[
        Command(
            "consult", new_consultation, N_("ask residents a few quick questions"), roles=ORGANISING
        ),
        Command(
            "results",
            list_results,
            N_("see the results of your consultations, close them"),
            roles=ORGANISING,
        ),
    ],
    actions=[
        Action(AnswerButton, start_answering),
        Action(ConsultationButton, organiser_action),
    ],
    jobs=[OPEN_CONSULTATIONS, CLOSE_CONSULTATIONS],
    group_commands=[GroupCommand("register", register_group)],
)
