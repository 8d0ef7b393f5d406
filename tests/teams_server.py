"""A local Bot Connector for tests, activities in Teams' own shapes, and the real bot wired to both.

`ConnectorServer` is the Bot Framework Connector REST API on 127.0.0.1 (a random port): the bot sends
to `/v3/conversations/{id}/activities` and replies to `/v3/conversations/{id}/activities/{activityId}`,
and gets back a `ResourceResponse` (`{"id": ...}`, a fresh message id) as Teams gives it. It records
every activity received, with the Authorization header it came with. Activities sent to the bot carry
this server's URL as their `serviceUrl`, so the bot's replies land here.

`running_teams_bot` serves the real bot (`bot.server.build_app` around `TeamsEndpoint`, a real
botbuilder `CloudAdapter`) on a random port, with the fake retriever and model server of
`slack_server` and a real SQLite store; `TeamsBot.send` POSTs an activity to `/api/messages`. By
default the bot runs as with the Emulator (no app id); `authenticated=True` runs it with an app id,
botbuilder checking tokens against `bot_framework_auth.KeyServer` and `send` signing each activity
as the Bot Framework service would (the connector on 127.0.0.1 is then allowed as a reply target).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer
from bot_framework_auth import ConnectorTokens, KeyServer, point_botbuilder_at
from botbuilder.integration.aiohttp import CloudAdapter
from slack_server import FakeModel, FakePassage, make_deps, migrated_database, serving

from bot.admin import AdminCommands
from bot.records import Records
from bot.server import build_app
from bot.teams import TeamsDeps, TeamsEndpoint
from bot.teams.deps import Admin
from feedback.db import Database

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP_ID = "c9e1b3a0-5a6d-4c8e-9f3b-1d2e3f4a5b6c"
BOT_ID = "28:c9e1b3a0-5a6d-4c8e-9f3b-1d2e3f4a5b6c"
BOT_NAME = "Chatbot"
PERSONAL = "a:1qHx7dW0ZsKpXyGVmZtQq3fO8mJv2rB5nE9cL4aT6uI0wS1kD7hY2gF3jR8pM5bN0vC6xZ4-personal"
CHANNEL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
GROUP = "19:meeting_NjQ2YjVhZjYtYzY0OS00ZDY4LWE1YmEtZTU3YjVmYzQ0ZWE4@thread.v2"

Payload = dict[str, Any]
_ids = itertools.count(1)


@dataclass(frozen=True)
class User:
    teams_id: str
    aad_id: str
    name: str

    def account(self) -> Payload:
        return {"id": self.teams_id, "name": self.name, "aadObjectId": self.aad_id}


ADA = User(
    "29:1Ada-Ln8sG3kVx0QwErTyUiOpAsDfGhJkLzXcVbNm", "6a7b8c9d-0000-4e1f-8a2b-3c4d5e6f7a8b", "Ada Lovelace"
)
GRACE = User(
    "29:1Grace-Hp2Zx9QwErTyUiOpAsDfGhJkLzXcVbNmQ", "9e8d7c6b-1111-4a5b-9c8d-7e6f5a4b3c2d", "Grace Hopper"
)


@dataclass(frozen=True)
class Received:
    """One activity the bot sent to the connector."""

    conversation: str
    reply_to: str | None
    activity: Payload
    authorization: str | None
    id: str


class ConnectorServer:
    """Use as `async with ConnectorServer() as connector:`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._ids = itertools.count(1_718_100_000_000)
        self._server: TestServer | None = None
        app = web.Application()
        # Any characters but "/" (aiohttp's default leaves out braces), as the real Connector takes.
        conversation, activity = "{conversation:[^/]+}", "{activity:[^/]+}"
        app.router.add_post(f"/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post(f"/v3/conversations/{conversation}/activities/{activity}", self._send)
        app.router.add_put(f"/v3/conversations/{conversation}/activities/{activity}", self._send)
        self.app = app

    async def __aenter__(self) -> ConnectorServer:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}/"

    async def _send(self, request: web.Request) -> web.Response:
        activity_id = str(next(self._ids))
        self.received.append(
            Received(
                conversation=request.match_info["conversation"],
                reply_to=request.match_info.get("activity"),
                activity=await request.json(),
                authorization=request.headers.get("Authorization"),
                id=activity_id,
            )
        )
        return web.json_response({"id": activity_id}, status=201)

    def messages(self, conversation: str | None = None) -> list[Received]:
        """The messages (not typing indicators) sent, in order."""
        return [
            r
            for r in self.received
            if r.activity.get("type") == "message"
            and (conversation is None or r.conversation == conversation)
        ]

    def typing(self) -> list[Received]:
        return [r for r in self.received if r.activity.get("type") == "typing"]

    async def wait_for(self, check: Callable[[], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"connector received only {self.received}"
            await asyncio.sleep(0.01)


# --- activities as Teams sends them ------------------------------------------------------------


def _base(kind: str, *, user: User, conversation: Payload, service_url: str, **extra: Any) -> Payload:
    return {
        "type": kind,
        "id": extra.pop("id", None) or str(next(_ids) + 1_718_000_000_000),
        "timestamp": "2025-06-11T10:15:30.123Z",
        "localTimestamp": "2025-06-11T11:15:30.123+01:00",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": user.account(),
        "conversation": conversation,
        "recipient": {"id": BOT_ID, "name": BOT_NAME},
        "locale": "en-GB",
        "localTimezone": "Europe/London",
        **extra,
    }


def personal() -> Payload:
    return {"conversationType": "personal", "tenantId": TENANT, "id": PERSONAL}


def channel_thread(root: str) -> Payload:
    return {
        "isGroup": True,
        "conversationType": "channel",
        "tenantId": TENANT,
        "id": f"{CHANNEL};messageid={root}",
    }


def group_chat() -> Payload:
    return {"isGroup": True, "conversationType": "groupChat", "tenantId": TENANT, "id": GROUP}


def channel_data(conversation: Payload) -> Payload:
    data: Payload = {"tenant": {"id": TENANT}}
    if conversation["conversationType"] == "channel":
        data |= {
            "teamsChannelId": CHANNEL,
            "teamsTeamId": "19:team0d2c3b4a@thread.tacv2",
            "channel": {"id": CHANNEL},
            "team": {"id": "19:team0d2c3b4a@thread.tacv2"},
        }
    return data


def message(
    text: str,
    *,
    service_url: str,
    user: User = ADA,
    conversation: Payload | None = None,
    mention: bool = False,
    id: str | None = None,
) -> Payload:
    """A message to the bot; with `mention`, `<at>Chatbot</at>` leads the text, as in a channel."""
    conversation = conversation or personal()
    entities: list[Payload] = [
        {
            "type": "clientInfo",
            "locale": "en-GB",
            "country": "GB",
            "platform": "Web",
            "timezone": "Europe/London",
        }
    ]
    if mention:
        at = f"<at>{BOT_NAME}</at>"
        text = f"{at} {text}"
        entities.insert(0, {"type": "mention", "text": at, "mentioned": {"id": BOT_ID, "name": BOT_NAME}})
    return _base(
        "message",
        user=user,
        conversation=conversation,
        service_url=service_url,
        id=id,
        text=text,
        textFormat="plain",
        attachments=[{"contentType": "text/html", "content": f"<div><div>{text}</div></div>"}],
        entities=entities,
        channelData=channel_data(conversation),
    )


def feedback_invoke(
    reply_to_id: str,
    reaction: str,
    *,
    service_url: str,
    text: str = "",
    user: User = ADA,
    id: str | None = None,
) -> Payload:
    """A click on Teams' own 👍/👎 under an AI answer, with what was typed in the feedback form."""
    return _base(
        "invoke",
        user=user,
        conversation=personal(),
        service_url=service_url,
        id=id,
        name="message/submitAction",
        replyToId=reply_to_id,
        value={
            "actionName": "feedback",
            "actionValue": {"reaction": reaction, "feedback": f'{{"feedbackText":"{text}"}}'},
        },
        channelData={
            "tenant": {"id": TENANT},
            "source": {"name": "message"},
            "legacy": {"replyToId": reply_to_id},
        },
    )


def reaction(
    reply_to_id: str,
    *,
    service_url: str,
    added: list[str] = (),  # type: ignore[assignment]
    removed: list[str] = (),  # type: ignore[assignment]
    user: User = GRACE,
    conversation: Payload | None = None,
) -> Payload:
    extra: Payload = {}
    if added:
        extra["reactionsAdded"] = [{"type": r} for r in added]
    if removed:
        extra["reactionsRemoved"] = [{"type": r} for r in removed]
    conversation = conversation or personal()
    return _base(
        "messageReaction",
        user=user,
        conversation=conversation,
        service_url=service_url,
        replyToId=reply_to_id,
        channelData=channel_data(conversation) | {"legacy": {"replyToId": reply_to_id}},
        **extra,
    )


def card_execute(reply_to_id: str, data: Payload, *, service_url: str, user: User = ADA) -> Payload:
    """An Action.Execute on the bot's card (Universal Actions): inputs are merged into `data`."""
    return _base(
        "invoke",
        user=user,
        conversation=personal(),
        service_url=service_url,
        name="adaptiveCard/action",
        replyToId=reply_to_id,
        value={
            "action": {
                "type": "Action.Execute",
                "title": "Send correction",
                "verb": data["action"],
                "data": data,
            },
            "trigger": "manual",
        },
        channelData={
            "tenant": {"id": TENANT},
            "source": {"name": "message"},
            "legacy": {"replyToId": reply_to_id},
        },
    )


def card_submit(reply_to_id: str, data: Payload, *, service_url: str, user: User = ADA) -> Payload:
    """An Action.Submit on the bot's card, as older clients send it: a message with a `value`."""
    return _base(
        "message",
        user=user,
        conversation=personal(),
        service_url=service_url,
        replyToId=reply_to_id,
        value=data,
        channelData={
            "tenant": {"id": TENANT},
            "source": {"name": "message"},
            "legacy": {"replyToId": reply_to_id},
        },
    )


# --- the bot -----------------------------------------------------------------------------------


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
) -> TeamsDeps:
    shared = make_deps(database, model, passages)
    return TeamsDeps(
        pipeline=shared.pipeline,
        records=Records(database, platform="teams"),
        app_id=app_id,
        admin=admin,
        inflight=shared.inflight,
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
) -> AsyncIterator[TeamsBot]:
    """`admin_ids`: run the real admin commands for these users (or hand in `admin`). `database`: a
    migrated store to use (the `database` fixture's); by default a new SQLite file. `authenticated`:
    see the module's docstring; `keys`: authenticated, against this (running) key server.
    `reply_to_loopback`: authenticated, True unless told (the connector is on 127.0.0.1). `peer`: the
    address requests seem to come from (as a middleware that reads a trusted proxy's headers would
    set it); by default this machine's."""
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
            deps = teams_deps(database, model, admin=admin, app_id=app_id)
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
