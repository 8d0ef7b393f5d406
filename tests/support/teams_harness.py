"""The real Teams bot for tests, wired to the local Bot Connector of `teams_connector`.

`running_teams_bot` serves the real bot (`bot.server.build_app` around `TeamsEndpoint`, a real
botbuilder `CloudAdapter`) on a random port, with the fake retriever and model server of `fakes`
and a real SQLite store; `TeamsBot.send` POSTs an activity (`teams_activities`) to `/api/messages`.
By default the bot runs as with the Emulator (no app id); `authenticated=True` runs it with an app
id, botbuilder checking tokens against `bot_framework_auth.KeyServer` and `send` signing each
activity as the Bot Framework service would (the connector on 127.0.0.1 is then allowed as a reply
target).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter

from bot.admin import AdminCommands
from bot.records import Records
from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.server import build_app
from bot.teams import TeamsDeps, TeamsEndpoint
from bot.teams.deps import Admin
from feedback.db import Database
from tests.support.bot_framework_auth import ConnectorTokens, KeyServer, point_botbuilder_at
from tests.support.common import migrated_database, serving
from tests.support.fakes import FakeModel, FakePassage, fake_pipeline
from tests.support.teams_activities import APP_ID, Payload, message
from tests.support.teams_connector import ConnectorServer, Received


@dataclass
class TeamsBot:
    """The bot's web server as the Bot Framework service sees it."""

    url: str
    connector: ConnectorServer
    database: Database
    model: FakeModel
    deps: TeamsDeps
    http: httpx.AsyncClient = field(repr=False)
    adapter: CloudAdapter = field(repr=False)  # the endpoint's, for proactive turns a test starts
    keys: KeyServer | None = field(default=None, repr=False)  # authenticated: Microsoft's keys

    @property
    def service_url(self) -> str:
        return self.connector.url

    async def send(self, activity: Payload, headers: dict[str, str] | None = None) -> httpx.Response:
        """Authenticated, an activity sent without `headers` carries a valid token."""
        if headers is None and self.keys is not None:
            token = self.keys.token(app_id=self.deps.app_id, service_url=str(activity.get("serviceUrl")))
            headers = {"Authorization": f"Bearer {token}"}
        return await self.http.post("/api/messages", json=activity, headers=headers or {})

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until no answer or vote is being worked on."""
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0)
        while self.deps.background or self.deps.inflight.count:
            assert time.monotonic() < deadline, "work still in flight"
            await asyncio.sleep(0.01)

    async def ask(self, text: str = "How many days of leave do I get?", **kw: Any) -> Received:
        """Ask in the personal chat; the answer as the connector received it."""
        before = len(self.connector.messages())
        response = await self.send(message(text, service_url=self.service_url, **kw))
        assert response.status_code == 200, response.text
        await self.connector.wait_for(lambda: len(self.connector.messages()) > before)
        await self.settled()
        return self.connector.messages()[-1]


def teams_deps(
    database: Database,
    model: FakeModel,
    passages: list[FakePassage] | None = None,
    *,
    admin: Admin | None = None,
    app_id: str = "",
    review: ReviewDesk | None = None,
) -> TeamsDeps:
    return TeamsDeps(
        pipeline=fake_pipeline(database, model, passages),
        records=Records(database, platform="teams"),
        app_id=app_id,
        admin=admin,
        review=review,
    )


@asynccontextmanager
async def running_teams_bot(
    tmp_path: Path,
    *,
    model: FakeModel | None = None,
    admin: Admin | None = None,
    admin_ids: list[str] | None = None,
    app_id: str = "",
    app_password: str = "",
    database: Database | None = None,
    authenticated: bool = False,
    keys: KeyServer | None = None,
    reply_to_loopback: bool | None = None,
    allow_unauthenticated: bool = False,
    peer: str | None = None,
    reviewers: list[str] | None = None,
    approvals_required: int = 1,
    configure: Callable[[TeamsDeps], None] | None = None,
) -> AsyncIterator[TeamsBot]:
    """`admin_ids`: run the real admin commands for these users (or hand in `admin`). `database`: a
    migrated store to use (the `database` fixture's); by default a new SQLite file. `authenticated`:
    see the module's docstring; `keys`: authenticated, against this (running) key server.
    `reply_to_loopback`: authenticated, True unless told (the connector is on 127.0.0.1). `peer`: the
    address requests seem to come from (as a middleware that reads a trusted proxy's headers would
    set it); by default this machine's. `reviewers`: a review desk for these ids (the review card)."""
    model = model or FakeModel()
    own_database = database is None
    database = database or migrated_database(tmp_path / f"teams-{uuid.uuid4().hex[:6]}.db")
    if admin_ids is not None:
        admin = AdminCommands(database, admins=admin_ids)
    with contextlib.ExitStack() as stack:
        if authenticated and keys is None:
            keys = stack.enter_context(KeyServer())
        if keys is not None:
            authenticated = True
            stack.enter_context(point_botbuilder_at(keys))
            app_id, app_password = app_id or APP_ID, app_password or "s3cret-value"
        async with ConnectorServer() as connector:
            review = None
            if reviewers is not None:
                review = ReviewDesk(
                    database, ReviewPolicy.of(reviewers=reviewers, approvals_required=approvals_required)
                )
            deps = teams_deps(database, model, admin=admin, app_id=app_id, review=review)
            if configure is not None:  # before the endpoint is built from them
                configure(deps)
            endpoint = TeamsEndpoint(
                deps,
                app_password=app_password,
                allow_unauthenticated=allow_unauthenticated,
                reply_to_loopback=True if authenticated and reply_to_loopback is None else reply_to_loopback,
                credentials_factory=ConnectorTokens(app_id, app_password) if authenticated else None,
            )
            app = build_app(teams=endpoint, inflight=deps.inflight)
            if peer is not None:
                app.middlewares.append(_seen_from(peer))
            async with (
                serving(app) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                bot = TeamsBot(url, connector, database, model, deps, http, endpoint.adapter, keys)
                yield bot
                await bot.settled()
            await deps.pipeline.client.aclose()
    if own_database:
        database.dispose()


def _seen_from(peer: str) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request.clone(remote=peer))

    return middleware
