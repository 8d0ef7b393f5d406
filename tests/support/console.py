"""The bot's real aiohttp app with the console and /metrics on a random local port, a fake model
server behind `httpx.MockTransport`, a fake retriever, and the real store (`database` fixture)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.admin import AdminCommands
from bot.console import ConsoleDeps
from bot.inflight import Inflight
from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.metrics import BotMetrics
from bot.records import Records
from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.review.news import Tell
from bot.server import build_app
from feedback.db import Database
from tests.support.common import serving
from tests.support.fakes import FakeModel, fake_pipeline

TOKEN = "s3cret-console-token-for-tests"
ADMIN = "console:admin"  # the identity ADMIN_TOKEN signs in as


@dataclass
class Console:
    http: httpx.AsyncClient
    deps: ConsoleDeps
    model: FakeModel
    database: Database
    knowledge: KnowledgeBase

    async def ask(
        self, question: str, **extra: Any
    ) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
        """POST a question; the response and its server-sent events as (name, data)."""
        response = await self.http.post("/console/api/ask", json={"question": question, **extra})
        return response, parse_events(response.text) if response.status_code == 200 else []

    async def answer(
        self, question: str = "How many days of leave do I get?", **extra: Any
    ) -> dict[str, Any]:
        response, events = await self.ask(question, **extra)
        assert response.status_code == 200, response.text
        [answer] = [data for name, data in events if name == "answer"]
        return answer

    async def login(self, token: str = TOKEN, **extra: str) -> httpx.Response:
        return await self.http.post(
            "/console/login", data={"token": token, "next": "/console/review", **extra}
        )

    async def csrf(self, page: str = "/console/model") -> str:
        html = (await self.http.get(page)).text
        match = re.search(r'name="csrf" value="([^"]+)"', html)
        assert match, "no CSRF token on the page"
        return match.group(1)


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@asynccontextmanager
async def running_console(
    database: Database,
    tmp_path: Path,
    *,
    admin_token: str = TOKEN,
    console_users: dict[str, str] | None = None,
    chat_open: bool = False,
    reviewers: tuple[str, ...] = ("R1",),
    approvals_required: int = 1,
    on_decided: Tell | None = None,
) -> AsyncIterator[Console]:
    """`on_decided`: who is told about review decisions (`bot.review.news`); by default nobody.
    `console_users`: CONSOLE_USERS as {name: token}, beside `admin_token`."""
    model = FakeModel()
    pipeline = fake_pipeline(database, model)
    inflight = Inflight()
    knowledge = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    desk = ReviewDesk(
        database,
        ReviewPolicy.of(reviewers=reviewers, approvals_required=approvals_required),
        knowledge=knowledge,
    )
    metrics = BotMetrics(database)
    pipeline.observers.append(metrics.observe_answer)
    deps = ConsoleDeps(
        pipeline=pipeline,
        database=database,
        records=Records(database, platform="web"),
        review=desk,
        admin=AdminCommands(database, admins=()),
        admin_token=admin_token,
        console_users=console_users or {},
        chat_open=chat_open,
        inflight=inflight,
        on_decided=on_decided,
    )
    app = build_app(inflight=inflight, metrics=metrics, console=deps)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        yield Console(http, deps, model, database, knowledge)
    await pipeline.client.aclose()
