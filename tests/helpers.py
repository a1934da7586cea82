"""Small steps that stories share: a resident onboarding, counting rows, finding a person."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.i18n import Translator
from storage.models import Identity, Person
from tests.conftest import in_transaction
from tests.emulator import FakeUser

FR, EN, AR = Translator("fr"), Translator("en"), Translator("ar")


async def onboard(user: FakeUser, t: Translator = FR, slug: str = "quartier-nord") -> None:
    """Play a resident joining through the council's link and consenting."""
    user.send(f"/start {slug}")
    await user.next_message()
    user.tap(t._("✅ Yes, I agree"))
    await user.next_message()  # welcome
    await user.next_message()  # what you can do


async def count_rows(app: CoupDePouce, model: type) -> int:
    async def run(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    return int(await in_transaction(app, run))


async def person_of(app: CoupDePouce, telegram_id: int) -> Person | None:
    async def run(session: AsyncSession) -> Person | None:
        return await session.scalar(
            select(Person).join(Identity).where(Identity.external_id == str(telegram_id))
        )

    found: Person | None = await in_transaction(app, run)
    return found


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `coupdepouce ARGS` in a child process; return its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def read_csv(text: str, delimiter: str) -> list[dict[str, str]]:
    """A CSV export, read as a spreadsheet of its locale would: after its BOM (without which
    a spreadsheet misreads accents), with its separator."""
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=delimiter))
