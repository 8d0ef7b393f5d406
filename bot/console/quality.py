"""The quality page: is the bot getting better? 👍 rate per adapter version and per day, answers per
day, and the questions whose answers got the most 👎, as charts drawn on the server; why answers were
wrong per adapter version (retrieval or generation misses, `feedback.triage`) and the documentation
gaps the retrieval misses point at."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup

from bot.console import charts
from bot.console.core import admin_page, console_of
from feedback import queries
from feedback.db import Database
from feedback.models import utcnow

DEFAULT_DAYS = 30
MAX_DAYS = 365
WORST = 10


def routes() -> list[web.RouteDef]:
    return [web.get("/console/quality", quality_page)]


def _days(raw: str | None) -> int:
    try:
        days = int(raw or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


def _rate(up: int, down: int) -> float:
    return up / (up + down) if up + down else 0.0


def _read(database: Database, days: int) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    with database.reader() as session:
        by_adapter = queries.votes_by_adapter(session)
        by_day = queries.votes_by_day(session, since=since)
        answered = queries.answers_by_day(session, since=since)
        worst = queries.most_downvoted(session, limit=WORST)
        found = queries.misses(session)  # one read serves both tables
        misses = queries.misses_by_adapter(found)
        gaps = queries.documentation_gaps(found)
    figures: dict[str, Markup | None] = {
        "rate_by_adapter": charts.bars(
            [(name, _rate(u, d)) for name, u, d in by_adapter],
            testid="chart-rate-by-adapter",
            title="👍 rate per adapter version",
            fmt=charts.percent,
            ymax=1.0,
        )
        if by_adapter
        else None,
        "rate_by_day": charts.line(
            [(day, _rate(u, d)) for day, u, d in by_day],
            testid="chart-rate-by-day",
            title="👍 rate per day",
            fmt=charts.percent,
            ymax=1.0,
        )
        if by_day
        else None,
        "answers_by_day": charts.bars(
            [(day, float(n)) for day, n in answered], testid="chart-answers-by-day", title="Answers per day"
        )
        if answered
        else None,
        "most_downvoted": charts.hbars(
            [(q.text, float(n)) for q, _, n in worst],
            testid="chart-most-downvoted",
            title="Questions with the most 👎",
        )
        if worst
        else None,
    }
    return {
        "charts": figures,
        "by_adapter": [(name, u, d, _rate(u, d)) for name, u, d in by_adapter],
        "worst": worst,
        "misses": misses,
        "gaps": gaps,
        "total_answers": sum(n for _, n in answered),
    }


@admin_page
async def quality_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    days = _days(request.query.get("days"))
    data = await asyncio.to_thread(_read, console.deps.database, days)
    return console.render(request, "quality.html", days=days, **data)
