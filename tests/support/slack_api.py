"""A local Slack Web API for tests and benchmarks, and the workspace it answers for.

`SlackServer` is a Web API server on 127.0.0.1 (a random port) that answers like Slack
(`{"ok": true, ...}`, HTTP 200 even for errors, `invalid_auth` for a wrong token, 429 with
`Retry-After` when told to) and records every method called with its arguments. It keeps each
channel's messages, both those the bot posts and those a test adds as a person, so
`conversations.replies` returns real threads (with message metadata only when
`include_all_metadata` is asked for, as Slack does). It also speaks Socket Mode: `apps.connections.open`
hands out a ws:// URL to itself, and `socket_send` pushes an envelope down that socket.

It streams messages as Slack does: `chat.startStream` opens a message in its thread, `chat.appendStream`
adds markdown to it while it is in the streaming state, `chat.stopStream` ends it with blocks and
metadata under the text; each piece is kept in `streams` (ts -> the markdown sent, in order).
`fail_once` makes a method answer a Slack error once, as when the person stopped the stream.

What Slack sends to the bot is in `slack_payloads`; the real bot wired to this server in `slack_harness`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

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


def next_id() -> int:
    """A number no id made here before had: views, files, events and trigger ids share one count."""
    return next(_ids)


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
        self.streams: dict[str, list[str]] = {}  # streamed message ts -> markdown pieces, in order
        # What the bot put in threads, in order: each chat.postMessage's arguments, and each stream
        # once stopped (its whole text, the blocks and metadata it ended with), each with its ts.
        self.replies: list[Payload] = []
        self._rate_limited: dict[str, int] = {}
        self._failing: dict[str, str] = {}
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

    def fail_once(self, method: str, error: str) -> None:
        """The next call of `method` answers `{"ok": false, "error": error}`."""
        self._failing[method] = error

    def message(self, channel: str, ts: str) -> Payload:
        return next(m for m in self.messages.get(channel, []) if m["ts"] == ts)

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

    async def wait_for_replies(self, count: int = 1, timeout: float = 10.0, **match: Any) -> list[Payload]:
        """Poll until `count` replies (posted, or streamed and stopped) match `match`, or fail."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.replies if all(r.get(k) == v for k, v in match.items())]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"{count} replies {match} not sent within {timeout}s; calls: {seen}")
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
        if method in self._failing:
            return web.json_response({"ok": False, "error": self._failing.pop(method)})
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
            "assistant.threads.setSuggestedPrompts": self._suggested_prompts,
            "assistant.threads.setTitle": lambda a: (
                {"ok": True} if a.get("title") else {"ok": False, "error": "invalid_arguments"}
            ),
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
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
        self.replies.append({**args, "ts": message["ts"]})
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "message": message}

    def _start_stream(self, args: Payload) -> Payload:
        channel, thread_ts = args.get("channel"), args.get("thread_ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not str(channel).startswith("D"):  # outside a DM Slack needs to know whom it streams to
            for key in ("recipient_team_id", "recipient_user_id"):
                if not args.get(key):
                    return {"ok": False, "error": f"missing_{key}"}
        text = str(args.get("markdown_text") or "")
        message: Payload = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": text,
            "ts": self.next_ts(),
            "team": TEAM,
            "streaming": True,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(message)
        self.streams[message["ts"]] = [text] if text else []
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _streaming(self, args: Payload) -> Payload | str:
        """The streamed message the call names, or the error Slack gives."""
        try:
            message = self.message(str(args.get("channel", "")), str(args.get("ts", "")))
        except StopIteration:
            return "message_not_found"
        return message if message.get("streaming") else "message_not_in_streaming_state"

    def _append_stream(self, args: Payload) -> Payload:
        message = self._streaming(args)
        if isinstance(message, str):
            return {"ok": False, "error": message}
        text = args.get("markdown_text")
        if not text:
            return {"ok": False, "error": "invalid_arguments"}
        if len(text) > 12_000:
            return {"ok": False, "error": "msg_too_long"}
        message["text"] += text
        self.streams[message["ts"]].append(text)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"]}

    def _stop_stream(self, args: Payload) -> Payload:
        message = self._streaming(args)
        if isinstance(message, str):
            return {"ok": False, "error": message}
        if text := args.get("markdown_text"):
            message["text"] += text
            self.streams[message["ts"]].append(text)
        for key in ("blocks", "metadata"):
            if args.get(key):
                message[key] = args[key]
        message["streaming"] = False
        reply = {"channel": args["channel"], "thread_ts": message.get("thread_ts"), "text": message["text"]}
        reply.update(ts=message["ts"], blocks=args.get("blocks") or [], streamed=True)
        if args.get("metadata"):
            reply["metadata"] = args["metadata"]
        self.replies.append(reply)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "message": message}

    def _suggested_prompts(self, args: Payload) -> Payload:
        prompts = args.get("prompts") or []
        if not args.get("channel_id") or not 1 <= len(prompts) <= 4:
            return {"ok": False, "error": "invalid_arguments"}
        if any(not p.get("title") or not p.get("message") for p in prompts):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _update_message(self, args: Payload) -> Payload:
        """Replaces a message's text and blocks, as Slack does; only the bot's own messages."""
        for message in self.messages.get(args.get("channel", ""), []):
            if message["ts"] == args.get("ts"):
                if message.get("user") != BOT_USER:
                    return {"ok": False, "error": "cant_update_message"}
                message["text"] = args.get("text", message["text"])
                for key in ("blocks", "metadata"):
                    if key in args:
                        message[key] = args[key]
                message.pop("streaming", None)
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
        return {"ok": True, "view": {"id": f"V{next_id():08d}", "team_id": TEAM, **args["view"]}}

    def _upload_url(self, args: Payload) -> Payload:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next_id():08d}"
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
