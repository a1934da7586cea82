"""Language: /language, or the button on the consent screen."""

from __future__ import annotations

from flows.engine import (
    END,
    ChatDraft,
    Command,
    Context,
    Flow,
    Next,
    Option,
    Prompt,
    Step,
    StepName,
)
from flows.i18n import N_, SHIPPED_LOCALES, language_name


class LanguageStep(StepName):
    """Choosing a language."""

    CHOOSE = "language.choose"


async def choose(ctx: Context) -> Next:
    """Offer the languages, then come back to the question the person was on."""
    current = ctx.conversation.step
    if current and current != LanguageStep.CHOOSE:
        ctx.draft(ChatDraft).return_to = current
    return LanguageStep.CHOOSE


async def ask_language(ctx: Context) -> Prompt:
    """Ask for a language, each named in itself."""
    rows = [[Option(locale, language_name(locale))] for locale in SHIPPED_LOCALES]
    return Prompt("🌐 " + ctx._("Which language do you prefer?"), rows)


async def handle_language(ctx: Context, locale: str) -> Next:
    """Switch the person's language and go back where they were."""
    chat = ctx.draft(ChatDraft)
    if ctx.person is not None:
        ctx.person.locale = locale
    else:
        chat.locale = locale
    ctx.set_locale(locale)
    ctx.say(
        ctx._("Done: I will write to you in {language}.").format(language=language_name(locale))
    )
    back, chat.return_to = chat.return_to, None
    return ctx.engine.steps[back].name if back in ctx.engine.steps else END


FLOW = Flow(
    name="language",
    steps=[Step(LanguageStep.CHOOSE, ask_language, on_choice=handle_language)],
    commands=[
        Command(
            "language",
            choose,
            N_("change language"),
            needs_consent=False,
            words=frozenset({"langue", "lang", "اللغة", "لغة"}),
        )
    ],
)
