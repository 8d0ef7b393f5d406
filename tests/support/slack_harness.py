"""The real Slack bot for tests and benchmarks, wired to the local Slack of `slack_api`.

`running_bot` serves the real bot (`bot.server.build_app` around a real Bolt app) on a random port,
with the fake retriever and model server of `fakes` and a real SQLite store; `Bot.send_event` and
friends sign requests with the signing secret exactly as Slack does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_bolt.async_app import AsyncApp

from bot.records import Records
from bot.server import build_app
from bot.slack import Deps, build_slack_app
from bot.slack.web import SlackRoutes
from feedback.db import Database
from tests.support.common import migrated_database, serving
from tests.support.fakes import FakeModel, FakePassage, fake_pipeline
from tests.support.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM, Payload, SlackServer, next_id
from tests.support.slack_payloads import event_callback, signature_headers, slash_command


@dataclass
class Bot:
    """The bot's web server as Slack sees it."""

    url: str
    slack: SlackServer
    database: Database
    model: FakeModel
    deps: Deps
    http: httpx.AsyncClient = field(repr=False)
    app: AsyncApp = field(repr=False)

    async def post_signed(
        self, body: str, *, content_type: str, retry: int | None = None, **sign: Any
    ) -> httpx.Response:
        headers = signature_headers(body, content_type=content_type, **sign)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.http.post("/slack/events", content=body.encode(), headers=headers)

    async def send_event(
        self, event: Payload, *, event_id: str | None = None, retry: int | None = None, **sign: Any
    ) -> tuple[httpx.Response, str]:
        envelope = event_callback(event, event_id=event_id)
        response = await self.post_signed(
            json.dumps(envelope), content_type="application/json", retry=retry, **sign
        )
        return response, envelope["event_id"]

    async def send_interaction(self, payload: Payload) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post_signed(body, content_type="application/x-www-form-urlencoded")

    async def send_command(self, command: str, text: str, *, user: str, channel: str) -> httpx.Response:
        trigger_id = f"{next_id()}.{TEAM}.{uuid.uuid4().hex}"
        form = slash_command(
            command, text, user=user, channel=channel, slack_port=self.slack.port, trigger_id=trigger_id
        )
        return await self.post_signed(urlencode(form), content_type="application/x-www-form-urlencoded")

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until no answer or vote is being worked on."""
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0)
        while self.deps.inflight.count:
            assert time.monotonic() < deadline, "work still in flight"
            await asyncio.sleep(0.01)


def make_deps(database: Database, model: FakeModel, passages: list[FakePassage] | None = None) -> Deps:
    return Deps(pipeline=fake_pipeline(database, model, passages), records=Records(database))


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    model: FakeModel | None = None,
    passages: list[FakePassage] | None = None,
    configure: Callable[[Deps], None] | None = None,
) -> AsyncIterator[Bot]:
    """`configure` may change the listeners' collaborators before the app is built (e.g. hand them
    a review desk, or a real knowledge base as the retriever)."""
    model = model or FakeModel()
    database = migrated_database(tmp_path / "chatbot.db")
    async with SlackServer() as slack:
        deps = make_deps(database, model, passages)
        if configure is not None:
            configure(deps)
        slack_app = build_slack_app(
            deps, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url
        )
        async with (
            serving(build_app(slack=SlackRoutes(slack_app, SIGNING_SECRET), inflight=deps.inflight)) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            bot = Bot(url, slack, database, model, deps, http, slack_app)
            yield bot
            await bot.settled()  # let answers and votes finish before their servers go
        await deps.pipeline.client.aclose()
    database.dispose()
