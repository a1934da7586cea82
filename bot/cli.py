"""The `coupdepouce` command: demo, run, db, council, role, invite."""

from __future__ import annotations

import asyncio
import enum
import errno
import json
import logging
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.whatsapp.payloads import join_text
from bot.roles import ProcessRole
from bot.settings import Settings, SettingsError, load_settings
from flows import exports
from flows.councils import create as create_council
from flows.i18n import DEFAULT_LOCALE, SHIPPED_LOCALES, Translator
from flows.onboarding.flow import LINK_SEPARATOR
from flows.registry import FLOWS
from flows.talents.catalogue import CATEGORIES, skill_label
from flows.verification import service as verification
from storage import db
from storage.models import Council, Role
from storage.queries import councils, people, talents

log = logging.getLogger(__name__)
T = TypeVar("T")
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$")

# Plain help (click's): options without type noise, text wrapped between words.
PLAIN: Any = {"rich_markup_mode": None, "no_args_is_help": True}
app = typer.Typer(
    help="Coup de pouce: the neighbourhood council's chat bot.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database.", **PLAIN)
council_app = typer.Typer(help="Councils served by this bot.", **PLAIN)
role_app = typer.Typer(help="Staff roles in a council.", **PLAIN)
skills_app = typer.Typer(help="A council's skills catalogue.", **PLAIN)
whatsapp_app = typer.Typer(help="The WhatsApp channel.", **PLAIN)
app.add_typer(db_app, name="db")
app.add_typer(council_app, name="council")
app.add_typer(role_app, name="role")
app.add_typer(skills_app, name="skills")
app.add_typer(whatsapp_app, name="whatsapp")


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def settings() -> Settings:
    return load_settings()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if logging.getLevelName(level) > logging.DEBUG:
        # A line per migration, per job added and per tick: what runs is said in a handful.
        for chatty in ("alembic", "apscheduler"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def check_port(config: Settings) -> None:
    """Stop at once, in one line, when the web server's port is taken (before migrating or
    seeding anything)."""
    if config.http_port == 0:
        return  # any free port
    with socket.socket(socket.AF_INET6 if ":" in config.http_host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind((config.http_host, config.http_port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                fail(f"port {config.http_port} is in use: set HTTP_PORT")
            fail(f"cannot listen on {config.http_host}:{config.http_port}: {error.strerror}")


def upgrade_database(config: Settings) -> None:
    """Apply migrations, turning an unreachable database into one clear line."""
    try:
        db.upgrade(config.database_url)
    except (OperationalError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        fail(f"cannot open the database ({_safe_url(config.database_url)}): {reason}")
    log.info("database ready: %s", _safe_url(config.database_url))


def with_session(config: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one transaction against the configured database."""

    async def run() -> T:
        engine = db.create_engine(config.database_url)
        try:
            async with db.session_scope(db.session_factory(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return _run(run())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- commands ------------------------------------------------------------------------------


def reads(names: Iterable[str]) -> str:
    """A command's help epilog: the settings it reads."""
    listed = ", ".join(name.upper() for name in names)
    return f"Settings read (environment variables, or a .env file; see the README): {listed}."


DEMO_SETTINGS = (
    "database_url",
    "http_host",
    "http_port",
    "public_url",
    "dashboard_link_minutes",
    "dashboard_session_hours",
    "log_level",
)


@app.command(epilog=reads(Settings.model_fields))
def run(
    role: Annotated[
        ProcessRole,
        typer.Option(
            help="all: everything in one process. To share the work among processes on one "
            "PostgreSQL: web (webhooks, web chat, dashboard; as many as wanted), dispatcher "
            "(sends; one at a time, the others stand by), scheduler (periodic jobs)."
        ),
    ] = ProcessRole.ALL,
) -> None:
    """Run the bot on Telegram and/or WhatsApp, with the web server."""
    from bot.app import CoupDePouce
    from bot.settings import require_channel

    config = settings()
    require_channel(config)
    if role is not ProcessRole.ALL and config.is_sqlite:
        fail("--role needs PostgreSQL (DATABASE_URL): SQLite serves one process only")
    check_port(config)
    configure_logging(config.log_level)
    upgrade_database(config)
    bot = CoupDePouce(config, role=role)
    _run(bot.serve_forever())
    if bot.failed:
        raise typer.Exit(1)


@app.command(epilog=reads(DEMO_SETTINGS))
def demo() -> None:
    """Try the bot with no token and no internet: a demo council in a browser chat."""
    from bot.demo import run_demo

    config = settings()
    check_port(config)
    configure_logging(config.log_level)
    upgrade_database(config)
    _run(run_demo(config))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    config = settings()
    upgrade_database(config)
    typer.echo("database is up to date")


@council_app.command("add")
def council_add(
    slug: Annotated[str, typer.Argument(help="Short name used in links, e.g. quartier-nord.")],
    name: Annotated[str, typer.Option(help="The council's full name.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "Europe/Paris",
    locale: Annotated[str, typer.Option(help="The council's language.")] = DEFAULT_LOCALE,
    neighbourhoods: Annotated[
        str, typer.Option(help="Comma-separated neighbourhoods residents choose from.")
    ] = "",
) -> None:
    """Add a council, with the shipped skills catalogue."""
    places = [place.strip() for place in neighbourhoods.split(",") if place.strip()]
    if not SLUG_PATTERN.match(slug):
        fail("the slug is 2 to 64 lower-case letters, digits and hyphens, e.g. quartier-nord")
    if not name.strip():
        fail("--name cannot be empty")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"unknown time zone {timezone!r}; use a name like Europe/Paris")
    if locale not in SHIPPED_LOCALES:
        fail(f"unknown language {locale!r}; choose among {', '.join(SHIPPED_LOCALES)}")
    config = settings()
    upgrade_database(config)

    async def add(session: AsyncSession) -> None:
        if await councils.by_slug(session, slug) is not None:
            fail(f"a council named {slug!r} already exists")
        await create_council(session, slug, name.strip(), timezone, locale, places)

    try:
        with_session(config, add)
    except IntegrityError:
        fail(f"a council named {slug!r} already exists")
    typer.echo(f"council {slug} added: {name.strip()}")


@council_app.command("list")
def council_list() -> None:
    """List the councils."""
    config = settings()
    upgrade_database(config)

    async def listing(session: AsyncSession) -> list[str]:
        return [
            f"{c.slug}\t{c.name}\t{c.timezone}\t{c.locale}\t"
            + (f"silent members kept {c.inactive_months} months" if c.inactive_months else "")
            for c in await councils.all_councils(session)
        ]

    lines = with_session(config, listing)
    typer.echo(
        "\n".join(lines) if lines else "no council yet: add one with `coupdepouce council add`"
    )


@council_app.command("keep")
def council_keep(
    slug: Annotated[str, typer.Argument(help="The council.")],
    months: Annotated[
        int,
        typer.Argument(
            help="How long a silent member is kept (warned a month before; 0: for ever)."
        ),
    ],
) -> None:
    """Choose how long the council keeps members who no longer write or tap."""
    if not 0 <= months <= 120:
        fail("the period is 0 (keep for ever) to 120 months")
    config = settings()
    upgrade_database(config)

    async def keep(session: AsyncSession) -> None:
        council = await _council(session, slug)
        council.inactive_months = months

    with_session(config, keep)
    typer.echo(
        f"council {slug} keeps silent members for {months} months"
        if months
        else f"council {slug} keeps silent members for ever"
    )


class Channel(enum.StrEnum):
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"


@role_app.command("grant")
def role_grant(
    slug: Annotated[str, typer.Argument(help="The council.")],
    user_id: Annotated[
        str,
        typer.Argument(
            help="The person's Telegram user id, or WhatsApp number with --channel whatsapp."
        ),
    ],
    role: Annotated[str, typer.Argument(help="coordinator or organiser.")],
    channel: Annotated[
        Channel, typer.Option(help="Where the person talks to the bot.")
    ] = Channel.TELEGRAM,
) -> None:
    """Make a Telegram user (or a WhatsApp number) a coordinator or organiser of a council."""
    staff = {Role.COORDINATOR.value: Role.COORDINATOR, Role.ORGANISER.value: Role.ORGANISER}
    if role not in staff:
        fail("the role is coordinator or organiser")
    if channel is Channel.TELEGRAM:
        external_id = user_id.strip()
        if not external_id.isdigit():
            fail("a Telegram user id is a number (the person can get it from @userinfobot)")
    else:
        external_id = re.sub(r"[\s().+-]", "", user_id).removeprefix("00")
        if not external_id.isdigit() or not 8 <= len(external_id) <= 15:
            fail("a WhatsApp number in international form, e.g. +33 6 12 34 56 78")
    config = settings()
    upgrade_database(config)

    async def grant(session: AsyncSession) -> str:
        council = await councils.by_slug(session, slug)
        if council is None:
            fail(f"no council named {slug!r}; see `coupdepouce council list`")
        await people.grant_role(session, council, channel.value, external_id, staff[role])
        return council.name

    council_name = with_session(config, grant)
    typer.echo(f"{user_id} is now {role} of {council_name}")


KEY_PATTERN = re.compile(r"^[a-z0-9_]{2,32}$")


@skills_app.command("list")
def skills_list(slug: Annotated[str, typer.Argument(help="The council.")]) -> None:
    """List the council's skills: key, category, name in each language, and whether offered."""
    config = settings()
    upgrade_database(config)

    async def listing(session: AsyncSession) -> list[str]:
        council = await _council(session, slug)
        lines = []
        for skill in await talents.skills(session, council.id, active_only=False):
            names = " / ".join(skill_label(skill, Translator(locale)) for locale in SHIPPED_LOCALES)
            state = "" if skill.active else "\t(removed)"
            lines.append(f"{skill.key}\t{skill.category}\t{names}{state}")
        return lines

    typer.echo("\n".join(with_session(config, listing)))


@skills_app.command("add")
def skills_add(
    slug: Annotated[str, typer.Argument(help="The council.")],
    key: Annotated[str, typer.Argument(help="Short identifier, e.g. bike_repair.")],
    label: Annotated[
        list[str], typer.Option(help="The name in one language, as LANG:NAME; repeat per language.")
    ],
    category: Annotated[str, typer.Option(help="One of the catalogue's categories.")] = "other",
) -> None:
    """Add a skill to the council's catalogue (or offer again one that was removed)."""
    if not KEY_PATTERN.match(key):
        fail("the key is 2 to 32 lower-case letters, digits or underscores, e.g. bike_repair")
    if category not in CATEGORIES:
        fail(f"unknown category {category!r}; choose among {', '.join(CATEGORIES)}")
    labels: dict[str, str] = {}
    for item in label:
        locale, _, name = item.partition(":")
        if locale not in SHIPPED_LOCALES or not name.strip():
            fail(f"--label takes LANG:NAME with LANG among {', '.join(SHIPPED_LOCALES)}")
        labels[locale] = name.strip()[:100]
    config = settings()
    upgrade_database(config)

    async def add(session: AsyncSession) -> None:
        council = await _council(session, slug)
        existing = await talents.skill_by_key(session, council.id, key)
        if existing is None:
            await talents.add_skill(session, council, key, category, labels)
        else:
            existing.active, existing.category = True, category
            existing.labels = {**existing.labels, **labels}

    with_session(config, add)
    typer.echo(f"skill {key} offered in {slug}")


@skills_app.command("remove")
def skills_remove(
    slug: Annotated[str, typer.Argument(help="The council.")],
    key: Annotated[str, typer.Argument(help="The skill's key (see `skills list`).")],
) -> None:
    """Stop offering a skill; residents who have it keep it in their profile."""
    config = settings()
    upgrade_database(config)

    async def remove(session: AsyncSession) -> None:
        council = await _council(session, slug)
        skill = await talents.skill_by_key(session, council.id, key)
        if skill is None:
            fail(f"no skill {key!r} in {slug}; see `coupdepouce skills list {slug}`")
        skill.active = False

    with_session(config, remove)
    typer.echo(f"skill {key} no longer offered in {slug}")


async def _council(session: AsyncSession, slug: str) -> Council:
    council = await councils.by_slug(session, slug)
    if council is None:
        fail(f"no council named {slug!r}; see `coupdepouce council list`")
    return council


@app.command()
def invite(
    slug: Annotated[str, typer.Argument(help="The council.")],
    qr: Annotated[
        Path | None,
        typer.Option(
            help="Write a QR code of the link to this PNG file, the council's name above it "
            "and the link under it."
        ),
    ] = None,
    poster: Annotated[
        Path | None,
        typer.Option(
            help="Write an A4 poster to this PDF file: the council's name, a line inviting "
            "residents to join, the QR code and the link."
        ),
    ] = None,
    talents: Annotated[
        bool, typer.Option("--talents", help="A link that opens the talent directory once joined.")
    ] = False,
    whatsapp: Annotated[
        bool,
        typer.Option(
            "--whatsapp", help="A wa.me link: the message it fills in is the request to join."
        ),
    ] = False,
    web: Annotated[
        bool, typer.Option("--web", help="The web chat's address, which joins the council.")
    ] = False,
    codes: Annotated[
        int | None,
        typer.Option(
            help="Make this many single-use codes that verify a web chat member (with --pdf)."
        ),
    ] = None,
    pdf: Annotated[
        Path | None,
        typer.Option(help="Write the codes as printable cards (A4, eight a page) to this PDF."),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            help="The language of the WhatsApp link's message, of the poster or of the "
            "cards (default: the council's)."
        ),
    ] = None,
) -> None:
    """Print the council's invitation link, and write it as a QR code picture to print (--qr),
    an A4 poster to put up (--poster) or both; or make single-use codes for door-to-door
    flyers (--codes N --pdf FILE)."""
    config = settings()
    upgrade_database(config)
    if language is not None and language not in SHIPPED_LOCALES:
        fail(f"unknown language {language!r}; choose among {', '.join(SHIPPED_LOCALES)}")
    if web and whatsapp:
        fail("choose one of --web and --whatsapp")
    if (codes is not None or pdf is not None) and (qr is not None or poster is not None):
        fail("--codes and --pdf make cards, --qr and --poster print the link: choose one")
    if codes is not None or pdf is not None:
        _invitation_codes(config, slug, codes, pdf, language)
        return

    async def find(session: AsyncSession) -> Council | None:
        return await councils.by_slug(session, slug)

    council = with_session(config, find)
    if council is None:
        fail(f"no council named {slug!r}; see `coupdepouce council list`")
    # The printing libraries take a second to load: only the commands that print load them.
    from bot import flyers, posters

    payload = f"{slug}{LINK_SEPARATOR}talents" if talents else slug
    if whatsapp:
        text = join_text(Translator(language or council.locale), payload)
        link = f"https://wa.me/{_whatsapp_number(config)}?text={quote(text)}"
    elif web:
        link = flyers.chat_address(_public_url(config), payload)
    else:
        link = f"https://t.me/{_bot_username(config)}?start={payload}"
    typer.echo(link)
    if qr is not None:
        _write(qr, posters.picture(council.name, link))
        typer.echo(f"QR code written to {qr}")
    if poster is not None:
        _write(poster, posters.poster(council.name, link, language or council.locale))
        typer.echo(f"poster written to {poster}")


def _write(path: Path, content: bytes) -> None:
    try:
        path.write_bytes(content)
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")


def _invitation_codes(
    config: Settings, slug: str, count: int | None, pdf: Path | None, language: str | None
) -> None:
    """Make the codes and their cards in one transaction: if the file cannot be written, no
    code is kept."""
    if count is None or pdf is None:
        fail("--codes N and --pdf FILE go together")
    if not 1 <= count <= verification.MAX_CODES:
        fail(f"--codes takes 1 to {verification.MAX_CODES} codes at a time")
    if not config.public_url:
        fail("set PUBLIC_URL (the address residents reach the web chat at) to print codes")
    public_url = config.public_url
    from bot import flyers

    async def make(session: AsyncSession) -> None:
        council = await _council(session, slug)
        made = await verification.new_codes(session, council, count)
        sheet = await asyncio.to_thread(
            flyers.cards, council.name, council.slug, language or council.locale, public_url, made
        )
        try:
            await asyncio.to_thread(pdf.write_bytes, sheet)
        except OSError as error:
            fail(f"cannot write {pdf}: {error.strerror}")

    with_session(config, make)
    typer.echo(f"{count} single-use codes for {slug} written to {pdf}")


def _public_url(config: Settings) -> str:
    """Where residents reach the web pages: PUBLIC_URL, else the address the server uses."""
    if config.public_url:
        return config.public_url
    host = config.http_host
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http_port}"


@whatsapp_app.command("templates")
def whatsapp_templates(
    submit: Annotated[
        bool, typer.Option("--submit", help="Send them to Meta for approval.")
    ] = False,
) -> None:
    """Print the message templates WhatsApp needs outside its 24-hour window (the Graph API's
    message_templates JSON), or submit them for approval."""
    from bot.channels.whatsapp import templates
    from bot.channels.whatsapp.client import CloudApi, GraphError, NetworkError

    definitions = templates.definitions()
    if not submit:
        typer.echo(json.dumps(definitions, ensure_ascii=False, indent=2))
        return
    config = settings()
    if not config.whatsapp:
        fail("set the WHATSAPP_* settings to submit the templates")
    if not config.whatsapp_business_account_id:
        fail("set WHATSAPP_BUSINESS_ACCOUNT_ID (in Meta's WhatsApp Manager) to submit templates")
    assert config.whatsapp_token and config.whatsapp_phone_number_id

    async def send_all() -> list[str]:
        assert config.whatsapp_token and config.whatsapp_phone_number_id
        assert config.whatsapp_business_account_id
        api = CloudApi(
            config.whatsapp_api_url,
            config.whatsapp_phone_number_id,
            config.whatsapp_token.get_secret_value(),
        )
        await api.start()
        lines = []
        try:
            for definition in definitions:
                name = f"{definition['name']} ({definition['language']})"
                try:
                    answer = await api.submit_template(
                        config.whatsapp_business_account_id, definition
                    )
                except GraphError as error:
                    lines.append(f"{name}: refused: {error}")
                    continue
                lines.append(f"{name}: {answer.get('status', 'submitted')}")
        finally:
            await api.close()
        return lines

    try:
        results = _run(send_all())
    except NetworkError as error:
        fail(f"cannot reach the Graph API: {error}")
    typer.echo("\n".join(results))


@app.command()
def export(
    kind: Annotated[
        str, typer.Argument(help=f"What to export: {', '.join(exports.available(FLOWS))}.")
    ],
    council: Annotated[str, typer.Option(help="The council's slug.")],
    format: Annotated[
        exports.Format,
        typer.Option(
            help="csv: for a spreadsheet, in the council's language (French: ';' between "
            "cells, decimal comma), times on its clock; xlsx: an Excel workbook, likewise "
            "(needs --output); json: for programs, English keys and ISO 8601 times."
        ),
    ] = exports.Format.CSV,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of stdout."),
    ] = None,
) -> None:
    """Export a council's talent directory, its calls, its meetings with their answers or
    its consultations with their figures, to stdout or a file."""
    declared = exports.available(FLOWS)
    chosen = declared.get(kind)
    if chosen is None:
        fail(f"no export named {kind!r}; choose among {', '.join(declared)}")
    if format is exports.Format.XLSX and output is None:
        fail("an xlsx workbook is a binary file: write it with --output FILE.xlsx")
    config = settings()
    upgrade_database(config)

    async def write(session: AsyncSession) -> bytes:
        found = await councils.by_slug(session, council)
        if found is None:
            fail(f"no council named {council!r}; see `coupdepouce council list`")
        exported = await exports.records(session, found, chosen)
        return exports.file(chosen, exported, format, found.locale, found.timezone)

    content = with_session(config, write)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(content)
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror}")
    typer.echo(f"{kind} of {council} written to {output}")


def _whatsapp_number(config: Settings) -> str:
    """The bot's WhatsApp number: WHATSAPP_NUMBER, or asked from the Graph API."""
    if config.whatsapp_number:
        return config.whatsapp_number
    if not config.whatsapp:
        fail("set WHATSAPP_NUMBER (or the WHATSAPP_* settings, to ask Meta) to build the link")
    from bot.channels.whatsapp.client import CloudApi, GraphError, NetworkError

    async def ask() -> str:
        assert config.whatsapp_token and config.whatsapp_phone_number_id
        api = CloudApi(
            config.whatsapp_api_url,
            config.whatsapp_phone_number_id,
            config.whatsapp_token.get_secret_value(),
        )
        await api.start()
        try:
            return await api.display_number()
        finally:
            await api.close()

    try:
        number = _run(ask())
    except (GraphError, NetworkError) as error:
        fail(f"cannot ask Meta for the bot's number ({error}); set WHATSAPP_NUMBER")
    if not number:
        fail("Meta gave no number for WHATSAPP_PHONE_NUMBER_ID; set WHATSAPP_NUMBER")
    return number


def _bot_username(config: Settings) -> str:
    if config.telegram_bot_username:
        return config.telegram_bot_username.lstrip("@")
    if config.telegram_bot_token is None:
        fail("set TELEGRAM_BOT_USERNAME (or TELEGRAM_BOT_TOKEN, to ask Telegram) to build the link")
    from telegram import Bot
    from telegram.error import TelegramError

    async def ask() -> str:
        assert config.telegram_bot_token is not None
        bot = Bot(
            config.telegram_bot_token.get_secret_value(), base_url=f"{config.telegram_api_url}/bot"
        )
        async with bot:
            return bot.username

    try:
        return _run(ask())
    except TelegramError as error:
        fail(f"cannot ask Telegram for the bot's name ({error}); set TELEGRAM_BOT_USERNAME")


def main() -> None:
    """Entry point: settings and user errors become one line on stderr and exit code 2."""
    try:
        app()
    except (SettingsError, CliError) as error:
        typer.echo(f"coupdepouce: error: {error}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
