"""What each process of a deployment does.

One process can do everything (`all`), or a deployment shares the work among processes on
one PostgreSQL, each with a role:

- `web`: reads what people send (webhooks, the web chat, and Telegram polling while it
  holds the polling lease) and answers at once; serves the dashboard. Run as many as
  wanted behind a load balancer.
- `dispatcher`: sends the outbox at the channels' rates. One sends at a time, holding the
  sending lease (`bot.lease`); the others stand by and take over within seconds when it
  stops or dies, so the channels' limits (30 messages a second on Telegram) hold for them
  all together.
- `scheduler`: the periodic jobs; several may run, each due row is claimed once.

Every role answers /healthz and /readyz.
"""

from __future__ import annotations

import enum


class ProcessRole(enum.StrEnum):
    """The roles a process can take (see the module's docstring)."""

    ALL = "all"
    WEB = "web"
    DISPATCHER = "dispatcher"
    SCHEDULER = "scheduler"
