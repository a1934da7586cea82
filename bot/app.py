"""Builds and runs the processes: the channels and the web server, for one role
(`bot.roles`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.guard import WebChatLimits
from bot.channels.telegram import TelegramChannel
from bot.channels.webchat import WebChatChannel
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.dashboard.views import Dashboard
from bot.dispatcher import Dispatcher, Limits, Sender
from bot.lease import Lease
from bot.pace import SharedPace
from bot.roles import ProcessRole
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.web import Readiness, build_web_app
from flows import retention
from flows.broadcasts.report import Price
from flows.digest import service as digest
from flows.engine import Engine, Flow, FlowConfig
from flows.privacy import inactive
from flows.registry import FLOWS
from storage.db import create_engine, session_factory

log = logging.getLogger(__name__)


class CoupDePouce:
    """The running bot: start() brings everything up, stop() takes it down in order."""

    def __init__(
        self,
        settings: Settings,
        *,
        flows: Sequence[Flow] = FLOWS,
        telegram: bool = True,
        role: ProcessRole = ProcessRole.ALL,
    ) -> None:
        """Build the bot; Telegram and WhatsApp are served when configured (`telegram=False`
        leaves Telegram out, as the demo does). `role`: the part of the work this process
        does."""
        self.settings = settings
        self.flows = flows
        self.role = role
        self.serves = role in (ProcessRole.ALL, ProcessRole.WEB)
        self.sends = role in (ProcessRole.ALL, ProcessRole.DISPATCHER)
        self.schedules = role in (ProcessRole.ALL, ProcessRole.SCHEDULER)
        self.readiness = Readiness()
        self.failed = False  # stopped because it lost what it held (its sending lease)
        self._stopping = asyncio.Event()
        # More pages on the web server, added when it starts (the demo's own).
        self.extra_routes: list[Callable[[web.Application], None]] = []
        price = (
            Price(settings.whatsapp_template_price, settings.whatsapp_price_currency)
            if settings.whatsapp_template_price is not None
            else None
        )
        self.database: AsyncEngine = create_engine(settings.database_url)
        self.sessions = session_factory(self.database)
        self.engine = Engine(
            flows,
            self.sessions,
            FlowConfig(
                admin_ids=settings.admin_telegram_ids,
                bot_username=settings.telegram_bot_username,
                dashboard_link_minutes=settings.dashboard_link_minutes,
                template_price=price,
            ),
        )
        self.telegram: TelegramChannel | None = None
        if telegram and settings.telegram_bot_token is not None:
            self.telegram = TelegramChannel(
                self.engine,
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_api_url,
                webhook_url=settings.webhook_url,
                webhook_secret=(
                    settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
                ),
                rate=settings.broadcast_rate,
            )
        self.webchat = WebChatChannel(
            self.engine,
            self.sessions,
            limits=WebChatLimits(
                new_chats_per_hour=settings.webchat_new_chats_per_hour,
                messages_per_second=settings.webchat_messages_per_second,
                messages_per_minute=settings.webchat_messages_per_minute,
                sockets_per_address=settings.webchat_sockets_per_address,
                messages_per_address=settings.webchat_messages_per_address,
                sockets_per_address_per_minute=settings.webchat_sockets_per_minute,
            ),
            origins=filter(None, [settings.public_url, *settings.webchat_origins]),
            push_subject=settings.webpush_contact
            or settings.public_url
            or f"http://{settings.http_host}:{settings.http_port}",
            # Notifications to this machine only for a bot that is itself only here.
            push_to_loopback=settings.served_locally,
        )
        senders: dict[str, Sender] = {self.webchat.channel: self.webchat}
        if self.telegram is not None:
            senders[self.telegram.channel] = self.telegram
        self.whatsapp: WhatsAppChannel | None = None
        if settings.whatsapp:
            assert settings.whatsapp_token and settings.whatsapp_phone_number_id
            assert settings.whatsapp_app_secret and settings.whatsapp_verify_token
            self.whatsapp = WhatsAppChannel(
                self.engine,
                self.sessions,
                api_url=settings.whatsapp_api_url,
                phone_number_id=settings.whatsapp_phone_number_id,
                token=settings.whatsapp_token.get_secret_value(),
                app_secret=settings.whatsapp_app_secret.get_secret_value(),
                verify_token=settings.whatsapp_verify_token.get_secret_value(),
                rate=settings.whatsapp_rate,
                on_queued=lambda: self.dispatcher.wake(),
            )
            senders[self.whatsapp.channel] = self.whatsapp
        self.paces: list[SharedPace] = []
        if not settings.is_sqlite:
            # Other processes may send on this database (any role, `all` included): the
            # channels' rates hold for them all together.
            for sender in (self.telegram, self.whatsapp):
                if sender is not None:
                    pace = SharedPace(self.database, sender.channel, sender.limiter.rate)
                    sender.limiter.shared = pace
                    self.paces.append(pace)
        self.dispatcher = Dispatcher(
            self.sessions,
            senders,
            Limits(
                chat_interval=settings.dispatch_chat_interval,
                group_interval=60.0 / settings.dispatch_group_per_minute,
                lease=settings.dispatch_lease_seconds,
                report_every=settings.dispatch_report_seconds,
                paid_broadcast=settings.telegram_paid_broadcast,
                template_price=price,
            ),
            # One process per SQLite file: whatever is marked as being sent was left by a crash.
            reclaim_all_at_start=settings.is_sqlite,
            lease=None if settings.is_sqlite else Lease(self.database, "dispatcher"),
            on_lease_lost=self._lost_lease,
        )
        self.scheduler = Scheduler(
            self.sessions,
            [
                *(job for flow in flows for job in flow.jobs),
                digest.job(flows),
                retention.job(flows),
                inactive.job(flows),
            ],
            self.dispatcher.wake,
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.running = False

    async def start(self) -> None:
        self.running = True
        await self.webchat.start()
        if self.whatsapp is not None:
            await self.whatsapp.start()
        if self.telegram is not None:
            polling = None if self.settings.is_sqlite else Lease(self.database, "telegram-polling")
            await self.telegram.start(receive=self.serves, lease=polling)
            if self.engine.config.bot_username is None:
                self.engine.config = replace(
                    self.engine.config, bot_username=self.telegram.bot_username
                )
        self.readiness.channels = tuple(
            channel.channel
            for channel in (self.telegram, self.whatsapp, self.webchat)
            if channel is not None
        )
        app = (
            self._web_app()
            if self.serves
            else build_web_app(self.database, readiness=self.readiness)
        )
        for add_routes in self.extra_routes if self.serves else ():
            add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        self.port = _bound_port(self._runner)
        self.engine.config = replace(self.engine.config, public_url=self.public_url)
        if self.sends:
            await self.dispatcher.start()
        if self.schedules:
            await self.scheduler.start()
        log.info("%s: web server on http://%s:%s", self.role, self.settings.http_host, self.port)

    def _web_app(self) -> web.Application:
        """Everything people reach: webhooks, the web chat, the dashboard, health."""
        secret = self.settings.webhook_secret
        return build_web_app(
            self.database,
            readiness=self.readiness,
            telegram=self.telegram,
            webhook_path=self.settings.webhook_path if self.settings.webhook_url else None,
            webhook_secret=secret.get_secret_value() if secret else None,
            webchat=self.webchat,
            whatsapp=self.whatsapp,
            dashboard=Dashboard(
                self.sessions,
                admin_ids=self.settings.admin_telegram_ids,
                session_hours=self.settings.dashboard_session_hours,
                flows=self.flows,
            ),
            trusted_proxy=self.settings.trusted_proxy,
        )

    def _lost_lease(self) -> None:
        """The dispatcher's lease went with its connection: stop, and exit with a failure
        (a supervisor starts the process again, to stand by)."""
        self.failed = True
        self._stopping.set()

    @property
    def public_url(self) -> str:
        """Where people reach the web pages: PUBLIC_URL, else the address the server listens on."""
        if self.settings.public_url:
            return self.settings.public_url
        host = self.settings.http_host
        if host in {"0.0.0.0", "::", ""}:
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port or self.settings.http_port}"

    async def stop(self) -> None:
        """Stop everything; safe to call twice."""
        if not self.running:
            return
        self.running = False
        self.readiness.stopping = True
        await self.scheduler.stop()
        await self.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.telegram is not None:
            await self.telegram.stop()
        if self.whatsapp is not None:
            await self.whatsapp.stop()
        await self.webchat.stop()
        for pace in self.paces:
            await pace.close()
        await self.database.dispose()

    async def serve_forever(self, on_started: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run until SIGINT or SIGTERM (or a lost lease: then `failed` is set)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stopping.set)
        await self.start()
        if on_started is not None:
            await on_started()
        try:
            await self._stopping.wait()
        finally:
            log.info("stopping")
            await self.stop()


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
