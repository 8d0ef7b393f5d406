"""A local Bot Framework Connector for tests.

`ConnectorServer` is the Bot Framework Connector REST API on 127.0.0.1 (a random port): the bot sends
to `/v3/conversations/{id}/activities` and replies to `/v3/conversations/{id}/activities/{activityId}`,
and gets back a `ResourceResponse` (`{"id": ...}`, a fresh message id) as Teams gives it. It records
every activity received, with the Authorization header it came with. Activities sent to the bot carry
this server's URL as their `serviceUrl` (`teams_activities`), so the bot's replies land here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Payload = dict[str, Any]


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
