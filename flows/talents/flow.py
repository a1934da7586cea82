"""/talents: join the directory in a few taps, see the profile, edit it, leave.

Skills → (languages, if translation) → own words → availability → neighbourhood → contact.
When editing one part of a saved profile, the profile is saved right after that part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from flows.engine import (
    END,
    Action,
    Command,
    Context,
    Export,
    Flow,
    Next,
    Option,
    Prompt,
    Step,
    StepName,
)
from flows.i18n import N_
from flows.onboarding.service import current_council
from flows.staff import COORDINATING
from flows.talents import dashboard, data, digest, export, picker, service
from flows.talents.buttons import Refresh, RefreshButton
from flows.talents.catalogue import AVAILABILITY, TRANSLATION_KEY, category_label, skill_label
from flows.talents.drafts import TalentDraft
from flows.talents.jobs import REFRESH_PROFILES
from flows.talents.picker import TICK
from storage.models import Council, Skill
from storage.queries import councils, people, talents


class TalentStep(StepName):
    """Writing, seeing and editing one's profile in the directory."""

    AVAILABILITY = "talents.availability"
    CATEGORY = "talents.category"
    CONFIRM_LEAVE = "talents.confirm_leave"
    CONTACT = "talents.contact"
    LANGUAGES = "talents.languages"
    NEIGHBOURHOOD = "talents.neighbourhood"
    PROFILE = "talents.profile"
    SKILLS = "talents.skills"
    WORDS = "talents.words"


# --- the draft, kept in the conversation ---------------------------------------------------


def draft_of(ctx: Context) -> service.Draft:
    return ctx.draft(TalentDraft).profile


def keep(ctx: Context, draft: service.Draft) -> None:
    ctx.draft(TalentDraft).profile = draft


async def council_of(ctx: Context) -> Council:
    council = await councils.by_id(ctx.session, ctx.draft(TalentDraft).council_id)
    assert council is not None
    return council


async def catalogue(ctx: Context) -> Sequence[Skill]:
    return await talents.skills(ctx.session, ctx.draft(TalentDraft).council_id)


async def saved_or_next(ctx: Context, next_step: StepName) -> Next:
    """While editing a saved profile, save now and show it; else go on to the next question."""
    if not ctx.draft(TalentDraft).editing:
        return next_step
    await service.save(ctx.session, await council_of(ctx), _person_id(ctx), draft_of(ctx))
    ctx.say(ctx._("Saved."))
    return TalentStep.PROFILE


def _person_id(ctx: Context) -> int:
    assert ctx.person is not None
    return ctx.person.id


# --- entry ---------------------------------------------------------------------------------


async def open_directory(ctx: Context) -> Next:
    """Show the profile, or start joining the directory."""
    assert ctx.person is not None
    council = await current_council(ctx.session, ctx.person)
    if council is None:
        ctx.say(ctx._("First, let's get you started: send /start."))
        return END
    ctx.drop(TalentDraft)
    ctx.draft(TalentDraft).council_id = council.id
    if not await talents.skills(ctx.session, council.id):
        await service.seed_catalogue(ctx.session, council)  # a council from before the directory
    talent = await talents.profile(ctx.session, council.id, ctx.person.id)
    if talent is not None:
        keep(ctx, service.Draft.of(talent))
        return TalentStep.PROFILE
    keep(ctx, service.Draft())
    ctx.say(
        ctx._(
            "Join the talent directory of {council}: say what you can lend a hand with, "
            "and the council can ask you when a neighbourhood project needs it."
        ).format(council=council.name)
    )
    return TalentStep.SKILLS


# --- skills, by category -------------------------------------------------------------------


async def ask_skills(ctx: Context) -> Prompt:
    """Ask for skills, one category at a time."""
    skills = await catalogue(ctx)
    chosen = draft_of(ctx).skill_ids
    lines = [ctx._("What can you lend a hand with? Open a category, tick your skills, then Done.")]
    if chosen:
        lines.append(
            ctx._("Chosen: {skills}").format(skills=picker.chosen_names(ctx, skills, chosen))
        )
    return Prompt("\n\n".join(lines), picker.category_rows(ctx, skills, chosen))


async def handle_skills(ctx: Context, value: str) -> Next:
    """Open a category, or move on."""
    if value.startswith(picker.CATEGORY):
        ctx.draft(TalentDraft).category = value.removeprefix(picker.CATEGORY)
        return TalentStep.CATEGORY
    skills = await catalogue(ctx)
    chosen = set(draft_of(ctx).skill_ids)
    speaks = any(skill.key == TRANSLATION_KEY and skill.id in chosen for skill in skills)
    if ctx.draft(TalentDraft).editing and not speaks:
        return await saved_or_next(ctx, TalentStep.WORDS)
    return TalentStep.LANGUAGES if speaks else TalentStep.WORDS


async def ask_category(ctx: Context) -> Prompt:
    """Tick the skills of one category."""
    category = ctx.draft(TalentDraft).category
    rows = picker.skill_rows(ctx, await catalogue(ctx), category, draft_of(ctx).skill_ids)
    return Prompt(
        ctx._("{category}: tap what you can do (tap again to untick).").format(
            category=category_label(category, ctx.t)
        ),
        rows,
    )


async def handle_category(ctx: Context, value: str) -> Next:
    """Tick or untick a skill, or go back to the categories."""
    if value == picker.BACK:
        return TalentStep.SKILLS
    draft = draft_of(ctx)
    keep(ctx, dataclasses.replace(draft, skill_ids=picker.toggled(draft.skill_ids, value)))
    return TalentStep.CATEGORY


# --- languages and own words ---------------------------------------------------------------


async def ask_languages(ctx: Context) -> Prompt:
    """Ask which languages the person speaks (they offered translation)."""
    return Prompt(
        ctx._("Which languages do you speak? For example: Arabic, Tamazight, English."),
        [[Option("skip", ctx._("Skip"))]],
    )


async def handle_languages_text(ctx: Context, text: str) -> Next:
    keep(ctx, dataclasses.replace(draft_of(ctx), languages=text))
    return await saved_or_next(ctx, TalentStep.WORDS)


async def handle_languages_skip(ctx: Context, value: str) -> Next:
    return await saved_or_next(ctx, TalentStep.WORDS)


async def ask_words(ctx: Context) -> Prompt:
    """Let the person add their own words."""
    return Prompt(
        ctx._("Anything else you can offer, in your own words? Write it, or skip."),
        [[Option("skip", ctx._("Skip"))]],
    )


async def handle_words_text(ctx: Context, text: str) -> Next:
    keep(ctx, dataclasses.replace(draft_of(ctx), own_words=text))
    return await saved_or_next(ctx, TalentStep.AVAILABILITY)


async def handle_words_skip(ctx: Context, value: str) -> Next:
    return await saved_or_next(ctx, TalentStep.AVAILABILITY)


# --- availability, neighbourhood, contact --------------------------------------------------


async def ask_availability(ctx: Context) -> Prompt:
    """Tick when the person is usually free."""
    draft = dataclasses.asdict(draft_of(ctx))
    rows = [
        [Option(key, (TICK if draft[key] else "") + ctx._(label))]
        for key, label in AVAILABILITY.items()
    ]
    rows.append([Option("done", TICK + ctx._("Done"))])
    return Prompt(ctx._("When are you usually free? Tick all that apply."), rows)


async def handle_availability(ctx: Context, value: str) -> Next:
    if value != "done":
        draft = draft_of(ctx)
        setattr(draft, value, not getattr(draft, value))  # value is one of AVAILABILITY
        keep(ctx, draft)
        return TalentStep.AVAILABILITY
    council = await council_of(ctx)
    return await saved_or_next(
        ctx, TalentStep.NEIGHBOURHOOD if council.neighbourhoods else TalentStep.CONTACT
    )


async def ask_neighbourhood(ctx: Context) -> Prompt:
    """Ask which neighbourhood the person lives in; one they told the council already (a
    consultation asked) comes first, to confirm with a tap."""
    council = await council_of(ctx)
    rows = [[Option(str(index), name)] for index, name in enumerate(council.neighbourhoods)]
    rows.append([Option("none", ctx._("I'd rather not say"))])
    assert ctx.person is not None
    membership = await people.membership(ctx.session, ctx.person, council)
    known = membership.neighbourhood if membership is not None else None
    if known and known in council.neighbourhoods:
        index = council.neighbourhoods.index(known)
        rows = [[Option(str(index), "✅ " + known)], *(r for r in rows if r[0].value != str(index))]
        return Prompt(
            ctx._("You told us you live in {place}: tap it to confirm, or choose another.").format(
                place=known
            ),
            rows,
        )
    return Prompt(ctx._("Which neighbourhood do you live in?"), rows)


async def handle_neighbourhood(ctx: Context, value: str) -> Next:
    council = await council_of(ctx)
    place = None if value == "none" else council.neighbourhoods[int(value)]
    keep(ctx, dataclasses.replace(draft_of(ctx), neighbourhood=place))
    return await saved_or_next(ctx, TalentStep.CONTACT)


async def ask_contact(ctx: Context) -> Prompt:
    """Ask how a project holder may reach the person once they agree to an introduction."""
    return Prompt(
        ctx._(
            "When you agree to meet a project holder, may they contact you directly? "
            "Otherwise their messages reach you through this bot."
        ),
        [
            [Option("direct", ctx._("Yes, directly"))],
            [Option("relay", ctx._("Only through the bot"))],
        ],
    )


async def handle_contact(ctx: Context, value: str) -> Next:
    """Save the profile."""
    draft = dataclasses.replace(draft_of(ctx), contact_ok=value == "direct")
    keep(ctx, draft)
    council = await council_of(ctx)
    outcome = await service.save(ctx.session, council, _person_id(ctx), draft)
    if outcome is service.Saved.JOINED:
        ctx.say(ctx._("Welcome to the talent directory of {council}!").format(council=council.name))
    else:
        ctx.say(ctx._("Saved."))
    return TalentStep.PROFILE


# --- the profile ---------------------------------------------------------------------------


async def summary(ctx: Context, council: Council, draft: service.Draft) -> str:
    names = {skill.id: skill_label(skill, ctx.t) for skill in await catalogue(ctx)}
    skills = [names[skill_id] for skill_id in draft.skill_ids if skill_id in names]
    free = [ctx._(label) for key, label in AVAILABILITY.items() if getattr(draft, key)]
    lines = [
        ctx._("Your profile in the directory of {council}:").format(council=council.name),
        ctx._("Skills: {skills}").format(skills=", ".join(skills) or "—"),
    ]
    if draft.languages:
        lines.append(ctx._("Languages: {languages}").format(languages=draft.languages))
    if draft.own_words:
        lines.append(ctx._("In your words: {text}").format(text=draft.own_words))
    lines.append(ctx._("Free: {times}").format(times=", ".join(free) or "—"))
    if draft.neighbourhood:
        lines.append(ctx._("Neighbourhood: {name}").format(name=draft.neighbourhood))
    lines.append(
        ctx._("Contact: directly, once you agree")
        if draft.contact_ok
        else ctx._("Contact: only through the bot")
    )
    return "\n".join(lines)


async def ask_profile(ctx: Context) -> Prompt:
    """Show the profile with what can be changed."""
    council = await council_of(ctx)
    talent = await talents.profile(ctx.session, council.id, _person_id(ctx))
    if talent is not None:
        keep(ctx, service.Draft.of(talent))
    rows = [
        [Option("skills", ctx._("Skills")), Option("availability", ctx._("Free time"))],
        [Option("words", ctx._("Own words")), Option("contact", ctx._("Contact"))],
    ]
    if council.neighbourhoods:
        rows.append([Option("neighbourhood", ctx._("Neighbourhood"))])
    rows.append([Option("leave", ctx._("Leave the directory")), Option("close", ctx._("Close"))])
    return Prompt(await summary(ctx, council, draft_of(ctx)), rows)


EDITS: dict[str, TalentStep] = {
    "skills": TalentStep.SKILLS,
    "availability": TalentStep.AVAILABILITY,
    "words": TalentStep.WORDS,
    "contact": TalentStep.CONTACT,
    "neighbourhood": TalentStep.NEIGHBOURHOOD,
}


async def handle_profile(ctx: Context, value: str) -> Next:
    if value == "close":
        ctx.drop(TalentDraft)
        return END
    if value == "leave":
        return TalentStep.CONFIRM_LEAVE
    ctx.draft(TalentDraft).editing = True
    return EDITS[value]


async def ask_confirm_leave(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Leave the talent directory? You will not be found in searches nor receive calls."),
        [[Option("leave", ctx._("Yes, leave")), Option("stay", ctx._("No, stay"))]],
    )


async def handle_confirm_leave(ctx: Context, value: str) -> Next:
    if value == "stay":
        return TalentStep.PROFILE
    await service.leave(ctx.session, await council_of(ctx), _person_id(ctx))
    ctx.drop(TalentDraft)
    ctx.say(ctx._("You have left the directory. Come back any time with /talents."))
    return END


async def confirm_profile(ctx: Context, button: RefreshButton) -> None:
    """Answer to "is your profile still right?": keep it visible, or open it to update it."""
    talent = await service.confirm(ctx.session, button.profile_id, _person_id(ctx))
    if talent is None:
        ctx.toast = ctx._("Sorry, this button does not work.")
        return
    if button.answer is Refresh.OK:
        ctx.say(ctx._("Thank you: your profile stays visible to the council."))
        return
    ctx.drop(TalentDraft)
    ctx.draft(TalentDraft).council_id = talent.council_id
    await ctx.engine.go(ctx, TalentStep.PROFILE)


FLOW = Flow(
    name="talents",
    drafts=[TalentDraft],
    exports=[
        Export(
            "talents",
            N_("Talent directory"),
            COORDINATING,
            export.directory,
            columns=export.DIRECTORY_COLUMNS,
        )
    ],
    personal_data=[data.PROFILES],
    digest=[digest.SECTION],
    dashboard=[dashboard.DIRECTORY],
    steps=[
        Step(TalentStep.SKILLS, ask_skills, on_choice=handle_skills, in_place=True),
        Step(TalentStep.CATEGORY, ask_category, on_choice=handle_category, in_place=True),
        Step(
            TalentStep.LANGUAGES,
            ask_languages,
            on_choice=handle_languages_skip,
            on_text=handle_languages_text,
            max_text_length=service.MAX_LANGUAGES,
        ),
        Step(
            TalentStep.WORDS,
            ask_words,
            on_choice=handle_words_skip,
            on_text=handle_words_text,
            max_text_length=service.MAX_OWN_WORDS,
        ),
        Step(
            TalentStep.AVAILABILITY, ask_availability, on_choice=handle_availability, in_place=True
        ),
        Step(TalentStep.NEIGHBOURHOOD, ask_neighbourhood, on_choice=handle_neighbourhood),
        Step(TalentStep.CONTACT, ask_contact, on_choice=handle_contact),
        Step(TalentStep.PROFILE, ask_profile, on_choice=handle_profile),
        Step(TalentStep.CONFIRM_LEAVE, ask_confirm_leave, on_choice=handle_confirm_leave),
    ],
    commands=[
        Command(
            "talents",
            open_directory,
            N_("join the talent directory, or see your profile"),
            words=frozenset({"annuaire", "directory", "المواهب"}),
        )
    ],
    actions=[Action(RefreshButton, confirm_profile)],
    jobs=[REFRESH_PROFILES],
)
