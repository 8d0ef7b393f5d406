"""The door of `/slack/events`: nothing reaches Bolt until its body has been read within a size
limit, its signature checked on the raw bytes, and the bytes found to be what Bolt can read (UTF-8
holding a JSON object, or a form whose `payload` is one).

Bolt parses a body before it checks the signature, so an unsigned `[1]`, `payload=x` or a
non-numeric timestamp was a 500 with a traceback, and its refusals were logged with the whole raw
body. Here each refusal is one short log line in our own words, naming no byte the caller chose:

    not signed / bad signature / stale or malformed timestamp   401
    body over MAX_BODY_BYTES                                      413
    signed, but not a body Bolt can read                          400
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body

from bot.slack import shapes

log = logging.getLogger(__name__)

# Slack's own payloads stay far below this (a message holds at most 40,000 characters).
MAX_BODY_BYTES = 1 << 20
MAX_AGE_SECONDS = 5 * 60  # Slack's rule: older requests may be replays
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() would also take " 1_0" or "١"
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """A request turned away; `reason` is fixed text of ours, safe to log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify(body: bytes, *, timestamp: str | None, signature: str | None, secret: str, now: float) -> None:
    """Slack's v0 signature: HMAC-SHA256 of `v0:{timestamp}:{raw body}`, timestamp within 5 minutes."""
    if not secret:
        raise Refused(401, "no signing secret is set")
    if not timestamp or not signature:
        raise Refused(401, "not signed")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Refused(401, "malformed timestamp")
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        raise Refused(401, "stale timestamp")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(expected, signature):
        raise Refused(401, "bad signature")


def readable(body: bytes, content_type: str | None) -> str:
    """The body as the text Bolt takes, once Bolt's own parser makes a JSON object of it."""
    try:
        text = body.decode("utf-8")
        payload: Any = parse_body(text, content_type)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refused(400, "signed, but not UTF-8 JSON or a form") from None
    if not isinstance(payload, dict):
        raise Refused(400, "signed, but not a JSON object")
    problem = shapes.problem(payload)
    if problem is not None:  # a few words of ours, naming only fields Bolt reads
        raise Refused(400, f"signed, but {problem}")
    return text


async def read_at_most(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, "body too large")
    chunks, size = [], 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise Refused(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def content_type(request: web.Request) -> str | None:
    """As Bolt reads it: the header up to its first `;`, untouched (Bolt compares it verbatim)."""
    value = request.headers.get("Content-Type")
    return value.split(";")[0] if value else None


def events_handler(slack: AsyncApp, *, signing_secret: str, limit: int = MAX_BODY_BYTES) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await read_at_most(request, limit)
            verify(
                body,
                timestamp=request.headers.get("X-Slack-Request-Timestamp"),
                signature=request.headers.get("X-Slack-Signature"),
                secret=signing_secret,
                now=time.time(),
            )
            text = readable(body, content_type(request))
        except Refused as refused:
            log.warning("Slack request from %s refused: %s", request.remote, refused.reason)
            return web.json_response({"error": "invalid request"}, status=refused.status)
        try:
            bolt_request = AsyncBoltRequest(
                body=text, query=request.query_string, headers=dict(request.headers)
            )
        except Exception as exc:  # a field Bolt reads that shapes.py does not check yet
            name = type(exc).__name__
            log.warning(
                "signed Slack request from %s refused: Bolt cannot read it (%s)", request.remote, name
            )
            return web.json_response({"error": "invalid request"}, status=400)
        return await to_aiohttp_response(await slack.async_dispatch(bolt_request))

    return handle


class _NoRawBody(logging.Filter):
    """Bolt's own refusal logs the whole raw body at INFO: keep the line, drop the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Invalid request signature detected"):
            record.msg, record.args = "Bolt refused a request: invalid signature", None
        return True


NO_RAW_BODY = _NoRawBody()


def quiet_bolt_refusals() -> None:
    """Idempotent: the logger Bolt's request verification writes to, whichever app made it."""
    logging.getLogger("slack_bolt.RequestVerification").addFilter(NO_RAW_BODY)
