"""A local Bot Framework Connector for tests.

`ConnectorServer` is the Bot Framework Connector REST API on 127.0.0.1 (a random port): the bot sends
to `/v3/conversations/{id}/activities` and replies to `/v3/conversations/{id}/activities/{activityId}`,
and gets back a `ResourceResponse` (`{"id": ...}`, a fresh message id) as Teams gives it. It records
every activity received, with the Authorization header it came with. Activities sent to the bot carry
this server's URL as their `serviceUrl` (`teams_activities`), so the bot's replies land here.

It streams as Teams does in one-to-one chats: a typing activity whose `streaminfo` entity says
`informative` opens a stream (its id is the stream's), `streaming` updates must carry the stream's id,
a higher `streamSequence` and all the text sent before, and the final message closes it; anything
else is refused with Teams' status and error code (403 `ContentStreamNotAllowed` outside personal
chats or after the stream ended, 400 `BadRequest` without text). `refuse_streaming_after(n)` makes it
refuse every update after the n-th, as when the person pressed Stop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Stream:
    text: str = ""
    sequence: int = 0
    final: bool = False
    updates: list[tuple[float, str]] = field(default_factory=list)  # (when, the text) of each accepted


class ConnectorServer:
    """Use as `async with ConnectorServer() as connector:`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.streams: dict[str, Stream] = {}
        self._refuse_after: int | None = None
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

    def refuse_streaming_after(self, updates: int) -> None:
        self._refuse_after = updates

    async def _send(self, request: web.Request) -> web.Response:
        activity_id = str(next(self._ids))
        activity = await request.json()
        info = next((e for e in activity.get("entities") or [] if e.get("type") == "streaminfo"), None)
        if info is not None:
            refused = self._stream(activity, info, activity_id)
            if refused is not None:
                return refused
            if info.get("streamType") == "final":
                activity_id = info["streamId"]  # the streamed message becomes the final one
        self.received.append(
            Received(
                conversation=request.match_info["conversation"],
                reply_to=request.match_info.get("activity"),
                activity=activity,
                authorization=request.headers.get("Authorization"),
                id=activity_id,
            )
        )
        if info is not None and info.get("streamType") == "streaming":
            return web.json_response({}, status=202)
        return web.json_response({"id": activity_id}, status=201)

    def _stream(self, activity: Payload, info: Payload, activity_id: str) -> web.Response | None:
        """Teams' checks on a streaming activity; the refusal, or None once it is applied."""
        kind, text = info.get("streamType"), activity.get("text") or ""
        if (activity.get("conversation") or {}).get("conversationType") != "personal":
            return _refusal(403, "ContentStreamNotAllowed", "Content stream is not allowed")
        if not text:
            return _refusal(400, "BadRequest", "Start streaming activities should include text")
        if kind == "informative" and not info.get("streamId"):
            stream = self.streams[activity_id] = Stream()
        else:
            found = self.streams.get(str(info.get("streamId")))
            if found is None or found.final:
                return _refusal(403, "ContentStreamNotAllowed", "Content stream is not allowed")
            stream = found
        if kind != "final":
            if not isinstance(info.get("streamSequence"), int) or info["streamSequence"] <= stream.sequence:
                return _refusal(400, "BadRequest", "streamSequence must increase")
            if self._refuse_after is not None and len(stream.updates) >= self._refuse_after:
                return _refusal(403, "ContentStreamNotAllowed", "Content stream was canceled by user")
            stream.sequence = info["streamSequence"]
        if kind in ("streaming", "final") and stream.text and not text.startswith(stream.text):
            return _refusal(
                403,
                "ContentStreamNotAllowed",
                "Request streamed content should contain the previously streamed content",
            )
        if kind in ("streaming", "final"):
            stream.text = text
        stream.final = kind == "final"
        stream.updates.append((time.monotonic(), text))
        return None

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


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
