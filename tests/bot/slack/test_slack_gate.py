"""`/slack/events` checks Slack's signature on the raw bytes before anything parses them (issue #21,
point 3): unsigned or malformed requests get 401, signed bodies Bolt cannot read get 400, bodies
over the limit 413, never a 500; each refusal is one short log line holding none of the body."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.slack import build_slack_app, gate
from feedback.db import Database
from tests.support.fakes import FakeModel
from tests.support.slack_api import BOT_TOKEN, SIGNING_SECRET, SlackServer
from tests.support.slack_harness import Bot, make_deps, running_bot
from tests.support.slack_payloads import event_callback, mention, signature_headers

FORGED_LINE = "\nINFO bot.admin: admin command rollback by UADMIN"
# The reproductions from the issue: each answered 500 with a traceback, signed or not.
MALFORMED = [
    pytest.param(b"x", "application/json", id="x-as-json"),
    pytest.param(b"[1]", "application/json", id="a-list"),
    pytest.param(b"payload=x", "application/x-www-form-urlencoded", id="form-payload-x"),
    pytest.param(
        b'{"type": "event_callback", "event": {"text": "\xff\xfe"}}', "application/json", id="not-utf8"
    ),
    pytest.param(b'{"type": "event_callback", "event": {"te', "application/json", id="truncated-json"),
    pytest.param(b'"x"', "application/json", id="a-string"),
    pytest.param(b"[" * 100_000, "application/json", id="nested-too-deep"),
]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path) as running:
        yield running


def signed(body: bytes, content_type: str, *, timestamp: str | None = None) -> dict[str, str]:
    """Headers signing the raw bytes (signature_headers signs text; these bodies need not be UTF-8)."""
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
async def test_unsigned_malformed_bodies_get_401(bot: Bot, body: bytes, content_type: str) -> None:
    response = await bot.http.post("/slack/events", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 401 and response.json() == {"error": "invalid request"}


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
async def test_signed_malformed_bodies_get_400(bot: Bot, body: bytes, content_type: str) -> None:
    response = await bot.http.post("/slack/events", content=body, headers=signed(body, content_type))
    assert response.status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "actions": []},
        {"type": "block_actions", "actions": ["x"], "user": {"id": "U1"}},
        {"type": "block_actions", "actions": [{"action_id": 5}]},
        {"type": "event_callback", "event": "x"},
        {"type": "event_callback", "event": {"type": "app_mention", "channel": ["C1"]}},
        {"type": "view_submission", "view": []},
        {"type": 7},
        {"type": "event_callback", "event": {"type": "message"}, "authorizations": [1]},
    ],
)
async def test_signed_slack_payloads_with_fields_of_the_wrong_type_get_400(bot: Bot, payload: dict) -> None:
    body = json.dumps(payload).encode()
    response = await bot.http.post("/slack/events", content=body, headers=signed(body, "application/json"))
    assert response.status_code == 400
    await bot.settled()
    assert [c.method for c in bot.slack.calls] == ["auth.test"]


@pytest.mark.parametrize("timestamp", ["abc", "1e9", "+{now}", "{now:_}", "9" * 30])
async def test_a_timestamp_that_is_not_plain_digits_gets_401(bot: Bot, timestamp: str) -> None:
    """Correctly signed over the timestamp as sent; `+{now}` and `{now:_}` are what int() would take."""
    message = bot.slack.add_message("C1", "U1", "<@U0BOT> hi")
    body = json.dumps(event_callback(mention(message, "C1"))).encode()
    headers = signed(body, "application/json", timestamp=timestamp.format(now=int(time.time())))
    response = await bot.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 401


async def test_a_body_over_the_limit_gets_413_without_being_read_whole(bot: Bot) -> None:
    body = b'{"type": "event_callback", "pad": "' + b"x" * gate.MAX_BODY_BYTES + b'"}'
    response = await bot.http.post("/slack/events", content=body, headers=signed(body, "application/json"))
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(gate.MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    streamed = await bot.http.post(
        "/slack/events", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert (await bot.http.get("/healthz")).status_code == 200


async def test_refusals_are_logged_once_short_and_without_the_body(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    forged = json.dumps({"type": "event_callback", "event": {"text": FORGED_LINE}}).encode()
    big = json.dumps({"type": "event_callback", "pad": "y" * 900_000 + FORGED_LINE}).encode()
    for body in (forged, big, FORGED_LINE.encode()):
        wrong = signed(body, "application/json") | {"X-Slack-Signature": "v0=" + "0" * 64}
        for headers in ({"Content-Type": "application/json"}, wrong):
            response = await bot.http.post("/slack/events", content=body, headers=headers)
            assert response.status_code == 401
    refusals = [r for r in caplog.records if r.name == "bot.slack.gate"]
    assert len(refusals) == 6
    assert all("\n" not in r.getMessage() and len(r.getMessage()) < 120 for r in refusals)
    assert "UADMIN" not in caplog.text and "yyyy" not in caplog.text
    # Six 1 MB-ish refusals used to add megabytes to the log; the client's own debug lines aside:
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpcore", "httpx"))]
    assert sum(len(line) for line in server_side) < 2000


async def test_bolts_own_refusal_no_longer_logs_the_raw_body(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Bolt checks the signature again behind the gate; its refusal used to log the whole body at INFO."""
    caplog.set_level(logging.DEBUG)
    async with SlackServer() as slack:
        deps = make_deps(database, FakeModel())
        app = build_slack_app(deps, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url)
        body = json.dumps({"type": "event_callback", "event": {"type": "message", "text": FORGED_LINE}})
        headers = signature_headers(body, content_type="application/json", secret="not-the-secret")
        response = await app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
        assert response.status == 401
        await deps.pipeline.client.aclose()
    assert "UADMIN" not in caplog.text and "Bolt refused a request" in caplog.text


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, "v0=" + "0" * 64, "not signed"),
        ("1700000000", None, "not signed"),
        ("1700000000 ", "v0=" + "0" * 64, "malformed timestamp"),
        ("١٧٠٠٠٠٠٠٠٠", "v0=" + "0" * 64, "malformed timestamp"),  # digits to int(), not to Slack
        ("1699999000", "v0=" + "0" * 64, "stale timestamp"),
        ("1700000000", "v0=" + "0" * 64, "bad signature"),
        ("1700000000", "V0=" + "0" * 64, "bad signature"),
        ("1700000000", "v0=é", "bad signature"),
    ],
)
def test_verify_says_why_in_its_own_words(timestamp: str | None, signature: str | None, reason: str) -> None:
    with pytest.raises(gate.Refused) as refused:
        gate.verify(b"{}", timestamp=timestamp, signature=signature, secret=SIGNING_SECRET, now=1_700_000_100)
    assert (refused.value.status, refused.value.reason) == (401, reason)


def test_verify_accepts_slacks_signature_on_the_raw_bytes() -> None:
    body = b'{"text": "caf\xc3\xa9"}'
    headers = signed(body, "application/json", timestamp="1700000000")
    gate.verify(
        body,
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
        secret=SIGNING_SECRET,
        now=1_700_000_299,
    )
    with pytest.raises(gate.Refused):
        gate.verify(body, timestamp="1700000000", signature=headers["X-Slack-Signature"], secret="", now=1e9)
