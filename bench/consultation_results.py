"""Figure 6a: the results of a consultation with 1,000,000 answers.

A closed, anonymous consultation of a council with 5 neighbourhoods: 220,000 ballots
answering 5 questions (one choice among 4, several among 5 with 1 to 3 ticked, a 1-5 scale,
one choice among 3, and a short text for 1 ballot in 50), 1,000,000 answer rows in all,
inserted in plain batches, then ANALYZE.

1. Figures: flows.consultations.service.aggregate (counts and shares per option, scale
   means, answers per question and per neighbourhood with small groups merged, the number
   of respondents, the free texts), in its own transaction; median and max of 3 runs
   after one unmeasured run. Baseline in the same run: SELECT count(*) of the same answers
   (one scan of them, the least any aggregation must do).
2. Charts: flows.consultations.results.chart_files (one PNG per question with options or a
   scale: 4 charts), median of 3 runs; per chart. Plus the CSV (results.table).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.common import database_kinds, label, quiet_logging, scratch_database
from flows.consultations import results, service
from flows.i18n import Translator
from storage import db
from storage.models import (
    Ballot,
    Consultation,
    ConsultationStatus,
    Council,
    Question,
    QuestionKind,
    Response,
    utcnow,
)

SEED = 20261122
BALLOTS = 220_000
BATCH = 20_000
PLACES = ["Les Tilleuls", "La Gare", "Le Centre", "Les Hauts", "Le Port"]
QUESTIONS = [
    (QuestionKind.SINGLE, "Que faire du square ?", ["Un jardin", "Des jeux", "Des bancs", "Rien"]),
    (
        QuestionKind.MULTIPLE,
        "Qu'est-ce qui manque ?",
        ["Lumière", "Propreté", "Commerces", "Transports", "Médecins"],
    ),
    (QuestionKind.SCALE, "Vous sentez-vous en sécurité le soir ?", []),
    (QuestionKind.SINGLE, "Viendrez-vous à la fête ?", ["Oui", "Peut-être", "Non"]),
    (QuestionKind.TEXT, "Une idée pour le quartier ?", []),
]
RUNS = 3
TARGET_FIGURES_S = 1.0
TARGET_CHARTS_S = 2.0


@dataclass
class AnswerRows:
    """Adds one ballot's answer rows to the batch."""

    ballot_id: int
    place: str
    question_ids: list[int]
    rows: list[dict[str, Any]]

    def add(self, question: int, option: int | None, words: str | None = None) -> None:
        self.rows.append(
            {
                "ballot_id": self.ballot_id,
                "question_id": self.question_ids[question],
                "option": option,
                "text": words,
                "neighbourhood": self.place,
            }
        )


async def build(url: str) -> tuple[int, int]:
    """The council, the consultation and its 1,000,000 answers; returns (its id, rows)."""
    rng = random.Random(SEED)
    engine = db.create_engine(url)
    sessions = db.session_factory(engine)
    try:
        async with db.session_scope(sessions) as session:
            council = Council(slug="quartier-nord", name="Quartier Nord", neighbourhoods=PLACES)
            council.quiet_start = council.quiet_end = None
            session.add(council)
            await session.flush()
            now = utcnow()
            consultation = Consultation(
                council_id=council.id,
                title="Le square Pasteur",
                anonymous=True,
                opens_at=now - timedelta(days=7),
                closes_at=now,
                status=ConsultationStatus.CLOSED,
                audience_size=400_000,
                audience="all",
                skill_ids=[],
            )
            session.add(consultation)
            await session.flush()
            questions = []
            for position, (kind, wording, options) in enumerate(QUESTIONS):
                question = Question(
                    consultation_id=consultation.id,
                    position=position,
                    kind=kind,
                    text=wording,
                    options=options,
                )
                session.add(question)
                questions.append(question)
            await session.flush()
            consultation_id, question_ids = consultation.id, [q.id for q in questions]
        rows = 0
        next_ballot = 1
        for start in range(0, BALLOTS, BATCH):
            size = min(BATCH, BALLOTS - start)
            # Small neighbourhoods exist on purpose: "Le Port" is rare, so it gets merged.
            places = rng.choices(PLACES, weights=[30, 30, 25, 14.999, 0.001], k=size)
            ballots: list[dict[str, Any]] = [
                {"id": next_ballot + i, "consultation_id": consultation_id, "neighbourhood": p}
                for i, p in enumerate(places)
            ]
            answers: list[dict[str, Any]] = []
            for ballot in ballots:
                row = AnswerRows(ballot["id"], ballot["neighbourhood"], question_ids, answers)
                row.add(0, rng.randrange(4))
                for option in rng.sample(range(5), rng.randint(1, 2)):
                    row.add(1, option)
                row.add(2, rng.choices([1, 2, 3, 4, 5], weights=[1, 2, 3, 4, 2])[0])
                row.add(3, rng.randrange(3))
                ballot["answered"] = 0b01111
                if rng.random() < 0.02:
                    row.add(4, None, "Plus d'arbres et de bancs à l'ombre")
                    ballot["answered"] = 0b11111
            async with engine.begin() as connection:
                await connection.execute(insert(Ballot), ballots)
                await connection.execute(insert(Response), answers)
            rows += len(answers)
            next_ballot += size
        async with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("ANALYZE"))
            else:
                await connection.execute(text("ANALYZE"))
                await connection.commit()
        return consultation_id, rows
    finally:
        await engine.dispose()


async def timed(work: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await work
    return time.perf_counter() - started, value


async def run(kind: str) -> None:
    name = label(kind)
    async with scratch_database(kind) as url:
        started = time.monotonic()
        consultation_id, rows = await build(url)
        print(
            f"[{name}] setup: {BALLOTS:,} ballots, {rows:,} answers in 5 questions, "
            f"{len(PLACES)} neighbourhoods ({time.monotonic() - started:.1f} s)"
        )
        engine = db.create_engine(url)
        sessions = db.session_factory(engine)
        try:

            async def figures() -> dict[str, Any]:
                async with db.session_scope(sessions) as session:
                    consultation = await session.get_one(Consultation, consultation_id)
                    return await service.aggregate(session, consultation, threshold=5)

            async def scan() -> int:
                async with db.session_scope(sessions) as session:
                    ids = select(Question.id).where(Question.consultation_id == consultation_id)
                    count = await session.scalar(
                        select(func.count())
                        .select_from(Response)
                        .where(Response.question_id.in_(ids))
                    )
                    return int(count or 0)

            await figures()  # connections and caches warm
            aggregate_times, scan_times = [], []
            found: dict[str, Any] = {}
            counted = 0
            for _ in range(RUNS):
                seconds, found = await timed(figures())
                aggregate_times.append(seconds)
                seconds, counted = await timed(scan())
                scan_times.append(seconds)
            best = statistics.median(aggregate_times)
            print(
                f"[{name}] figures (aggregate): median {best:.3f} s, max "
                f"{max(aggregate_times):.3f} s over {RUNS} runs; target < "
                f"{TARGET_FIGURES_S:.0f} s: {'yes' if best < TARGET_FIGURES_S else 'NO'}"
            )
            baseline = statistics.median(scan_times)
            print(
                f"[{name}] baseline, SELECT count(*) of the answers: median {baseline:.3f} s "
                f"({counted:,} rows); aggregate / count = {best / baseline:.1f}"
            )
            check(name, found, rows, counted)
        finally:
            await engine.dispose()
        t = Translator("fr")
        chart_times = []
        files = []
        for _ in range(RUNS):
            started_charts = time.perf_counter()
            files = await asyncio.to_thread(results.chart_files, t, found)
            chart_times.append(time.perf_counter() - started_charts)
        per_chart = statistics.median(chart_times) / max(len(files), 1)
        print(
            f"[{name}] charts: {len(files)} PNG in median {statistics.median(chart_times):.3f} s "
            f"({per_chart:.3f} s each, {sum(len(f.content) for f in files) // len(files):,} bytes "
            f"each); target < {TARGET_CHARTS_S:.0f} s: "
            f"{'yes' if statistics.median(chart_times) < TARGET_CHARTS_S else 'NO'}"
        )
        started_csv = time.perf_counter()
        table = results.table(t, found)
        csv_ms = (time.perf_counter() - started_csv) * 1000
        print(f"[{name}] CSV: {len(table):,} bytes in {csv_ms:.1f} ms")


def check(name: str, found: dict[str, Any], rows: int, counted: int) -> None:
    """The figures add up to what was inserted, and small groups are merged."""
    questions = found["questions"]
    counts = sum(sum(q["all"]["counts"]) for q in questions) + len(questions[4]["texts"])
    places = set(questions[0]["by_neighbourhood"])
    print(
        f"[{name}] check: respondents {found['respondents']:,} (expected {BALLOTS:,}), answers "
        f"counted {counts:,} (inserted {rows:,}, scanned {counted:,}), neighbourhood groups "
        f"{sorted(places)}; all as inserted: "
        f"{'yes' if found['respondents'] == BALLOTS and counts == rows == counted else 'NO'}"
    )


async def main() -> int:
    quiet_logging()
    for kind in database_kinds(description=__doc__ or ""):
        await run(kind)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
