"""The aiohttp web server: Telegram webhook (secret checked), WhatsApp webhook (signature
checked), health and readiness, the web chat and the coordinators' dashboard."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_remotes import XForwardedStrict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.telegram import TelegramChannel
from bot.channels.webchat import WebChatChannel
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.dashboard.views import Dashboard
from storage.db import migration_heads

log = logging.getLogger(__name__)

DATABASE = web.AppKey("database", AsyncEngine)
TELEGRAM = web.AppKey("telegram", TelegramChannel)
WEBHOOK_SECRET = web.AppKey("webhook_secret", str)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024


@dataclass
class Readiness:
    """What /readyz checks beside the database: the migrations this code expects, whether a
    channel is served, and whether the process is stopping (a load balancer then stops
    sending it work while it finishes what it holds)."""

    heads: frozenset[str] = field(default_factory=migration_heads)
    channels: tuple[str, ...] = ()
    stopping: bool = False


READINESS = web.AppKey("readiness", Readiness)


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process runs: whether to restart it, not whether to send it work."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the process can do its work: the database answers, its migrations are the
    ones this code expects, a channel is configured, and it is not stopping; 503 otherwise,
    saying which."""
    ready = request.app[READINESS]
    checks: dict[str, str] = {}
    try:
        async with request.app[DATABASE].connect() as connection:
            found = frozenset(
                await connection.scalars(text("SELECT version_num FROM alembic_version"))
            )
        checks["database"] = "ok"
        checks["migrations"] = "ok" if found == ready.heads else "not current"
    except Exception as error:
        log.warning("readiness: database unreachable: %s", error)
        checks["database"] = "unreachable"
    checks["channels"] = ",".join(ready.channels) or "none"
    if ready.stopping:
        checks["process"] = "stopping"
    ok = (
        checks["database"] == "ok"
        and checks.get("migrations") == "ok"
        and bool(ready.channels)
        and not ready.stopping
    )
    return web.json_response(
        {"status": "ok" if ok else "error", **checks}, status=200 if ok else 503
    )


async def telegram_webhook(request: web.Request) -> web.Response:
    """Take one update from Telegram; 200 once it is kept, even when a flow failed on it (it
    got an apology: a retry would fail the same), 500 when it could not be kept at all (the
    database out of reach): Telegram sends it again."""
    given = request.headers.get(SECRET_HEADER)
    if given is None:
        return web.Response(status=401, text="missing secret token")
    if not secrets.compare_digest(given.encode(), request.app[WEBHOOK_SECRET].encode()):
        return web.Response(status=403, text="wrong secret token")
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return web.Response(status=400, text="not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        return web.Response(status=400, text="not an update")
    try:
        await request.app[TELEGRAM].process_json(data)
    except Exception:
        log.exception("webhook update %s could not be kept", data.get("update_id"))
        return web.Response(status=500, text="not kept, send it again")
    return web.Response(text="ok")


FORWARDED = frozenset({"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"})
HSTS = "max-age=31536000"  # a year; subdomains are the city's business, not ours


def behind_proxy(proxies: frozenset[str]) -> Middleware:
    """Believe X-Forwarded-For, -Proto and -Host from the reverse proxy only: a request from
    elsewhere is taken as it came (its forwarded headers could say anything). The headers
    are read, and checked, by aiohttp-remotes."""
    networks = [ip_network(proxy, strict=False) for proxy in proxies]
    forwarded = XForwardedStrict([set(proxies)])

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        address = ip_address(peer[0]) if isinstance(peer, tuple) else None
        from_proxy = address is not None and any(address in network for network in networks)
        if from_proxy and any(name in request.headers for name in FORWARDED):
            return await forwarded.middleware(request, handler)
        return await handler(request)  # from elsewhere, or the proxy's own (a health check)

    return middleware


@web.middleware
async def strict_transport(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Over HTTPS, browsers are told to come back over HTTPS only."""
    response = await handler(request)
    if request.secure and not response.prepared:
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def build_web_app(
    database: AsyncEngine,
    *,
    readiness: Readiness | None = None,
    telegram: TelegramChannel | None = None,
    webhook_path: str | None = None,
    webhook_secret: str | None = None,
    webchat: WebChatChannel | None = None,
    whatsapp: WhatsAppChannel | None = None,
    dashboard: Dashboard | None = None,
    trusted_proxy: frozenset[str] = frozenset(),
) -> web.Application:
    middlewares: list[Middleware] = [strict_transport]
    if trusted_proxy:
        middlewares.insert(0, behind_proxy(trusted_proxy))
    app = web.Application(client_max_size=MAX_UPDATE_BYTES, middlewares=middlewares)
    app[DATABASE] = database
    app[READINESS] = readiness or Readiness()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if webchat is not None:
        webchat.add_routes(app)
    if dashboard is not None:
        dashboard.add_routes(app)
    if whatsapp is not None:
        whatsapp.add_routes(app)
    if telegram is not None and webhook_path and webhook_secret:
        app[TELEGRAM] = telegram
        app[WEBHOOK_SECRET] = webhook_secret
        app.router.add_post(webhook_path, telegram_webhook)
    return app
