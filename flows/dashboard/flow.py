"""/dashboard: a one-time link to the council's pages in a browser, valid a few minutes."""

from __future__ import annotations

from datetime import timedelta

from flows.dashboard import data
from flows.engine import END, Command, Context, Flow, Next
from flows.i18n import N_
from flows.staff import ORGANISING
from storage.models import utcnow
from storage.queries import dashboard

LOGIN_PATH = "/dashboard/login/"


async def send_link(ctx: Context) -> Next:
    assert ctx.person is not None  # the command needs consent
    if ctx.config.public_url is None:
        ctx.say(ctx._("The dashboard is not available on this server."))
        return END
    minutes = ctx.config.dashboard_link_minutes
    token = await dashboard.create_link(
        ctx.session, ctx.person.id, utcnow(), timedelta(minutes=minutes)
    )
    ctx.say(
        "\n\n".join(
            [
                ctx.ngettext(
                    "Your link to the dashboard. It works once, for {n} minute:",
                    "Your link to the dashboard. It works once, for {n} minutes:",
                    minutes,
                ).format(n=ctx.t.number(minutes)),
                f"{ctx.config.public_url}{LOGIN_PATH}{token}",
                ctx._("Do not pass it on: it opens the council's pages in your name."),
            ]
        )
    )
    return END


FLOW = Flow(
    name="dashboard",
    retention=data.RETENTION,
    personal_data=[data.SIGN_INS],
    commands=[
        Command(
            "dashboard",
            send_link,
            N_("open the council's dashboard in a browser"),
            roles=ORGANISING,
        )
    ],
)
