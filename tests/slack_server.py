"""A local Slack for tests and benchmarks, and the real bot app wired to it.

`SlackServer` is a Web API server on 127.0.0.1 (a random port) that answers like Slack
(`{"ok": true, ...}`, HTTP 200 even for errors, `invalid_auth` for a wrong token, 429 with
`Retry-After` when told to) and records every method called with its arguments. It keeps each
channel's messages, both those the bot posts and those a test adds as a person, so
`conversations.replies` returns real threads (with message metadata only when
`include_all_metadata` is asked for, as Slack does). It also speaks Socket Mode: `apps.connections.open`
hands out a ws:// URL to itself, and `socket_send` pushes an envelope down that socket.

`running_bot` serves the real bot (`bot.server.build_app` around a real Bolt app) on a random port,
with a fake retriever, a fake model server behind `httpx.MockTransport`, and a real SQLite store;
`Bot.send_event` and friends sign requests with the signing secret exactly as Slack does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from bot.pipeline import Pipeline
from bot.records import Records
from bot.server import build_app
from bot.slack import Deps, build_slack_app
from bot.slack.web import SlackRoutes
from feedback import migrate
from feedback.db import Database
from model_server.client import AsyncModelClient

TEAM = "T0TEST"
APP_ID = "A0CHATBOT"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OTHER_BOT_ID = "B0OTHER"

Payload = dict[str, Any]
_ids = itertools.count(1)


@dataclass(frozen=True)
class Call:
    method: str
    args: Payload
    status: int
    at: float


class SlackServer:
    """The Web API (and a Socket Mode endpoint). Use as `async with SlackServer() as slack:`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[Payload]] = {}
        self.socket_acks: list[Payload] = []
        self.uploads: dict[str, bytes] = {}  # file id -> the bytes POSTed to its upload URL
        self.files: dict[str, Payload] = {}  # file id -> the file as files.completeUploadExternal shared it
        self.responses: list[Payload] = []  # what was POSTed to slash commands' response_url
        self._rate_limited: dict[str, int] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._clock = itertools.count(1)
        self._server: TestServer | None = None
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/commands/{path:.*}", self._respond)
        self.app = app

    async def __aenter__(self) -> SlackServer:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        assert self._server is not None
        await self._server.close()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.port is not None
        return self._server.port

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- what tests use ----------------------------------------------------------------------

    def next_ts(self) -> str:
        n = next(self._clock)
        return f"{1_700_000_000 + n}.{n:06d}"

    def add_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> Payload:
        """A person's message, as Slack stores it; returns it (with its new ts)."""
        message: Payload = {
            "type": "message",
            "client_msg_id": str(uuid.uuid4()),
            "user": user,
            "text": text,
            "ts": self.next_ts(),
            "team": TEAM,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(message)
        return message

    def rate_limit_once(self, method: str, retry_after: int = 1) -> None:
        self._rate_limited[method] = retry_after

    def called(self, method: str, **match: Any) -> list[Payload]:
        """Arguments of each successful call of `method` whose arguments include `match`."""
        return [
            c.args
            for c in self.calls
            if c.method == method and c.status == 200 and all(c.args.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, method: str, count: int = 1, timeout: float = 10.0, **match: Any
    ) -> list[Payload]:
        """Poll until `method` was called `count` times (with `match`), or fail."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.called(method, **match)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"{method} x{count} {match} not called within {timeout}s; calls: {seen}")
            await asyncio.sleep(0.01)

    async def socket_send(self, payload: Payload, *, kind: str = "events_api", retry_attempt: int = 0) -> str:
        """Push an envelope to the connected Socket Mode client; its envelope id."""
        deadline = time.monotonic() + 10
        while not self._sockets:
            assert time.monotonic() < deadline, "no Socket Mode client connected"
            await asyncio.sleep(0.01)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    # --- the Web API -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: Payload = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.body_exists:
            args.update(await request.post())
        for key in ("blocks", "metadata", "view", "attachments"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.pop("token", "")

        if method in self._rate_limited:
            retry_after = self._rate_limited.pop(method)
            self.calls.append(Call(method, args, 429, time.monotonic()))
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
            )
        self.calls.append(Call(method, args, 200, time.monotonic()))
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = self._methods().get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _methods(self) -> dict[str, Callable[[Payload], Payload]]:
        ok: Callable[[Payload], Payload] = lambda _: {"ok": True}  # noqa: E731
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": lambda _: {"ok": True, "message_ts": self.next_ts()},
            "chat.update": self._update_message,
            "conversations.open": self._open_conversation,
            "conversations.replies": self._replies,
            "views.open": self._views_open,
            "apps.connections.open": self._connections_open,
            "assistant.threads.setStatus": ok,
            "assistant.threads.setSuggestedPrompts": ok,
            "reactions.add": ok,
            "reactions.remove": ok,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    def _auth_test(self, _: Payload) -> Payload:
        return {
            "ok": True,
            "url": "https://larkspur-test.slack.com/",
            "team": "Larkspur (test)",
            "user": "chatbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: Payload) -> Payload:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        message: Payload = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": args.get("text", ""),
            "ts": self.next_ts(),
            "team": TEAM,
        }
        for key in ("thread_ts", "blocks", "metadata"):
            if args.get(key):
                message[key] = args[key]
        self.messages.setdefault(args["channel"], []).append(message)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "message": message}

    def _update_message(self, args: Payload) -> Payload:
        """Replaces a message's text and blocks, as Slack does; only the bot's own messages."""
        for message in self.messages.get(args.get("channel", ""), []):
            if message["ts"] == args.get("ts"):
                if message.get("user") != BOT_USER:
                    return {"ok": False, "error": "cant_update_message"}
                message["text"] = args.get("text", message["text"])
                if "blocks" in args:
                    message["blocks"] = args["blocks"]
                message["edited"] = {"user": BOT_USER, "ts": self.next_ts()}
                return {"ok": True, "channel": args["channel"], "ts": message["ts"], "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def _open_conversation(self, args: Payload) -> Payload:
        """The bot's DM with one person (`users` holds one id here); D + their id."""
        users = str(args.get("users", ""))
        if not users or "," in users:
            return {"ok": False, "error": "not_supported" if users else "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": f"D{users}"}}

    def _replies(self, args: Payload) -> Payload:
        root = args.get("ts")
        thread = [
            m
            for m in self.messages.get(args.get("channel", ""), [])
            if m["ts"] == root or m.get("thread_ts") == root
        ]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in thread]
        messages.sort(key=lambda m: float(m["ts"]))
        # Pages from the oldest message, `limit` at a time, as Slack does.
        start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 1000)
        page, more = messages[start : start + limit], start + limit < len(messages)
        answer: Payload = {"ok": True, "messages": page, "has_more": more}
        if more:
            answer["response_metadata"] = {"next_cursor": str(start + limit)}
        return answer

    def _views_open(self, args: Payload) -> Payload:
        if not args.get("trigger_id") or not args.get("view"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": f"V{next(_ids):08d}", "team_id": TEAM, **args["view"]}}

    def _upload_url(self, args: Payload) -> Payload:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(_ids):08d}"
        self.files[file_id] = {"id": file_id, "name": args["filename"], "size": int(args["length"])}
        upload_url = f"http://127.0.0.1:{self.port}/upload/{file_id}"
        return {"ok": True, "upload_url": upload_url, "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.Response(status=404, text="Not Found")
        self.uploads[file_id] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")

    def _complete_upload(self, args: Payload) -> Payload:
        wanted = json.loads(args.get("files") or "[]")
        if not wanted or any(f.get("id") not in self.uploads for f in wanted):
            return {"ok": False, "error": "file_not_found" if wanted else "invalid_arguments"}
        shared = []
        for f in wanted:
            file = self.files[f["id"]]
            file.update(title=f.get("title") or file["name"], channels=[args.get("channel_id")])
            file.update(initial_comment=args.get("initial_comment"))
            shared.append(file)
        return {"ok": True, "files": shared}

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    def _connections_open(self, _: Payload) -> Payload:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "local-test", "approximate_connection_time": 3600},
                "connection_info": {"app_id": APP_ID},
            }
        )
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
        return ws


# --- what Slack sends to the bot -----------------------------------------------------------------


def signature_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def event_callback(event: Payload, *, event_id: str | None = None) -> Payload:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):010d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM,
                "user_id": BOT_USER,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def mention(message: Payload, channel: str) -> Payload:
    """The `app_mention` event for a person's message that mentions the bot."""
    return {**message, "type": "app_mention", "channel": channel, "event_ts": message["ts"]}


def message_event(message: Payload, channel: str, channel_type: str = "channel") -> Payload:
    """The `message` event (message.channels, message.im, ...) for a stored message."""
    return {**message, "channel": channel, "channel_type": channel_type, "event_ts": message["ts"]}


def reaction_event(
    kind: str, name: str, *, user: str, channel: str, ts: str, item_user: str = BOT_USER
) -> Payload:
    return {
        "type": kind,
        "user": user,
        "reaction": name,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def block_actions(
    *, user: str, channel: str, message: Payload, action: Payload, ephemeral: bool = False
) -> Payload:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": ephemeral,
            "thread_ts": message.get("thread_ts", message["ts"]),
        },
        "trigger_id": f"{next(_ids)}.{TEAM}.{uuid.uuid4().hex}",
        "team": {"id": TEAM, "domain": "larkspur-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "general"},
        "message": message,
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM}/1/abc",
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }


def view_submission(*, user: str, view: Payload, text: str | None) -> Payload:
    """The modal `view` (as views.open was given it) submitted with `text` in its input."""
    block = view["blocks"][0]
    value = {"type": "plain_text_input", "value": text}
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "larkspur-test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": f"{next(_ids)}.{TEAM}.{uuid.uuid4().hex}",
        "view": {
            **view,
            "id": f"V{next(_ids):08d}",
            "team_id": TEAM,
            "state": {"values": {block["block_id"]: {block["element"]["action_id"]: value}}},
            "hash": uuid.uuid4().hex,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }


# --- the other side: fakes for what is remote, and the real bot ----------------------------------


@dataclass(frozen=True)
class FakePassage:
    id: str
    title: str
    text: str
    source: str
    url: str | None = None
    score: float = 1.0


PASSAGES = [
    FakePassage(
        "leave-1",
        "Annual Leave > Allowance",
        "Everyone gets 27 days of leave a year.",
        "benefits-and-leave/annual-leave.md",
        "https://wiki.larkspur.example/leave?section=allowance&v=2",
    ),
    FakePassage(
        "leave-2",
        "Annual Leave > Carrying over",
        "Up to 5 days carry over to March 31.",
        "benefits-and-leave/annual-leave.md",
    ),
]


class FakeRetriever:
    def __init__(self, passages: list[FakePassage]) -> None:
        self.passages = passages

    def search(self, query: str, k: int = 5) -> list[FakePassage]:
        return self.passages[:k]


class FakeModel:
    """Answers like vLLM's chat completions; records the requests. `down` refuses connections;
    `delay` makes it slow; `too_slow` makes the client give up waiting, as httpx reports it.
    Asked to stream, it sends `text` a word at a time in vLLM's chunks (logprobs when asked, the
    usage last); `gate`, when given, holds the stream after its first two words until it is set;
    `fail_after` words in, it sends vLLM's mid-stream error event instead of the rest. Asked for
    `top_logprobs` (bot.grounding's check), it answers "Yes" with P(yes) = `yes` among the first
    token's alternatives."""

    def __init__(self, text: str = "You get 27 days of leave a year.") -> None:
        self.text = text
        self.down = False
        self.too_slow = False
        self.delay = 0.0
        self.requests: list[Payload] = []
        self.active = self.most_active = 0
        self.logprobs = [-0.2]  # of the answer's tokens; sets the confidence the client computes
        self.gate: asyncio.Event | None = None
        self.fail_after: int | None = None
        self.yes = 0.9

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.too_slow:
            raise httpx.ReadTimeout("timed out", request=request)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        if body.get("stream"):
            return httpx.Response(
                200, content=self._chunks(body), headers={"content-type": "text/event-stream"}
            )
        if body.get("top_logprobs"):
            return self._yes_or_no(body)
        return httpx.Response(
            200,
            json={
                "model": body["model"],
                "choices": [
                    {
                        "message": {"role": "assistant", "content": self.text},
                        "finish_reason": "stop",
                        "logprobs": {"content": [{"token": "x", "logprob": lp} for lp in self.logprobs]},
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 9},
            },
        )

    def _yes_or_no(self, body: Payload) -> httpx.Response:
        top = [("Yes", self.yes), ("No", 1 - self.yes), ("Maybe", 0.0)]
        alternatives = [{"token": t, "logprob": math.log(max(p, 1e-9))} for t, p in top]
        first = {"token": "Yes", "logprob": alternatives[0]["logprob"], "top_logprobs": alternatives}
        choice = {"message": {"role": "assistant", "content": "Yes"}, "finish_reason": "length"}
        choice["logprobs"] = {"content": [first]}
        return httpx.Response(200, json={"model": body["model"], "choices": [choice], "usage": {}})

    async def _chunks(self, body: Payload) -> AsyncIterator[bytes]:
        words = re.findall(r"\s*\S+", self.text) or [self.text]
        # one logprob per word, the rest with the last word (vLLM may send several in a chunk)
        shares = [self.logprobs[i : i + 1] for i in range(len(words) - 1)]
        shares.append(self.logprobs[len(words) - 1 :])

        def event(data: Payload | str) -> bytes:
            return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()

        yield event({"model": body["model"], "choices": [{"delta": {"role": "assistant", "content": ""}}]})
        for i, (word, share) in enumerate(zip(words, shares, strict=True)):
            if i == 2 and self.gate is not None:
                await self.gate.wait()
            if i == self.fail_after:
                yield event({"error": {"message": "engine died", "type": "InternalServerError", "code": 500}})
                return
            logprobs = (
                {"content": [{"token": "x", "logprob": lp} for lp in share]} if body.get("logprobs") else None
            )
            last = i == len(words) - 1
            choice = {
                "delta": {"content": word},
                "logprobs": logprobs,
                "finish_reason": "stop" if last else None,
            }
            yield event({"model": body["model"], "choices": [choice]})
            await asyncio.sleep(0)
        usage = {"prompt_tokens": 50, "completion_tokens": len(words)}
        yield event({"model": body["model"], "choices": [], "usage": usage})
        yield event("[DONE]")


@dataclass
class Bot:
    """The bot's web server as Slack sees it."""

    url: str
    slack: SlackServer
    database: Database
    model: FakeModel
    deps: Deps
    http: httpx.AsyncClient = field(repr=False)

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
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "larkspur-test",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            # Slack's is https://hooks.slack.com/commands/...; here the local server takes the replies.
            "response_url": f"http://127.0.0.1:{self.slack.port}/commands/{TEAM}/1/abc",
            "trigger_id": f"{next(_ids)}.{TEAM}.{uuid.uuid4().hex}",
        }
        return await self.post_signed(urlencode(form), content_type="application/x-www-form-urlencoded")

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until no answer or vote is being worked on."""
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0)
        while self.deps.inflight.count:
            assert time.monotonic() < deadline, "work still in flight"
            await asyncio.sleep(0.01)


def make_deps(database: Database, model: FakeModel, passages: list[FakePassage] | None = None) -> Deps:
    client = AsyncModelClient("http://model.test", transport=httpx.MockTransport(model), retries=0)
    pipeline = Pipeline(
        retriever=FakeRetriever(PASSAGES if passages is None else passages),
        client=client,
        model_name=lambda: "kb-v1",
        database=database,
    )
    return Deps(pipeline=pipeline, records=Records(database))


def migrated_database(path: Path) -> Database:
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return Database(url)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on a random local port; yields its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


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
            bot = Bot(url, slack, database, model, deps, http)
            yield bot
            await bot.settled()  # let answers and votes finish before their servers go
        await deps.pipeline.client.aclose()
    database.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll an async condition until it holds, or fail."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
