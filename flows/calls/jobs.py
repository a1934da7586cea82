"""Scheduled work for calls: at the deadline, close the call and send its summary."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from flows.calls import service
from flows.engine import Job
from flows.i18n import Translator
from flows.scheduling import each_due
from storage.models import Answer, Call, Priority
from storage.queries import outbox

CLOSE_JOB = "close-calls"


async def close_calls(session: AsyncSession, now: datetime) -> int:
    """Close every call past its deadline and tell its coordinator who answered what."""

    async def summarise(call: Call) -> bool:
        if call.holder_chat is None or call.holder_channel is None:
            return False
        t = Translator(call.holder_locale)
        names = {
            answer: [named(t, helper) for helper in helpers]
            for answer, helpers in (await service.tally(session, call.id)).items()
        }
        lines = [
            t._("“{title}” is closed.").format(title=call.title),
            t.ngettext("{count} can help", "{count} can help", len(names[Answer.YES])).format(
                count=t.number(len(names[Answer.YES]))
            )
            + (": " + ", ".join(names[Answer.YES]) if names[Answer.YES] else ""),
            t.ngettext("{count} maybe", "{count} maybe", len(names[Answer.MAYBE])).format(
                count=t.number(len(names[Answer.MAYBE]))
            )
            + (": " + ", ".join(names[Answer.MAYBE]) if names[Answer.MAYBE] else ""),
            t.ngettext(
                "{count} not this time", "{count} not this time", len(names[Answer.NO])
            ).format(count=t.number(len(names[Answer.NO]))),
        ]
        await outbox.enqueue_one(
            session,
            channel=call.holder_channel,
            chat_id=call.holder_chat,
            payload={"text": "\n".join(lines)},
            priority=Priority.REPORT,
            council_id=call.council_id,
            key=f"call-summary:{call.id}",
        )
        return True

    closed = await service.close_due(session, now)
    await each_due(session, CLOSE_JOB, closed, summarise, now=now)
    return len(closed)


def named(t: Translator, helper: service.Helper) -> str:
    """A helper's first name, marked if they are not a verified member."""
    if helper.verified:
        return helper.first_name
    return t._("{name} (not verified)").format(name=helper.first_name)


CLOSE_CALLS = Job(CLOSE_JOB, timedelta(seconds=30), close_calls)
