"""A bounded fuzz of `/slack/events`: a few hundred generated bodies (fixed seed) against the real bot
(Bolt app, aiohttp server, local Web API, SQLite), some unsigned or badly signed, some correctly
signed with mangled JSON, forms and Slack-shaped payloads whose fields are missing or of the wrong
type. Nothing may answer 5xx, and the bot must still be healthy and answering afterwards."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.slack import Deps, blocks, review_blocks, translate
from tests.support.slack_api import SIGNING_SECRET
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import (
    block_actions,
    event_callback,
    mention,
    reaction_event,
    view_submission,
)

SEED = 21
ROUNDS = 400
QUESTION = "<@U0BOT> how many days of leave do I get?"
REVIEWER = "U9"
FORM = "application/x-www-form-urlencoded"
JUNK: list[Any] = [
    None, True, False, 0, -1, 2**31, 2**63, 10**30, 1.5, "", "x", "not json", "abc", "\n", "{}",
    '{"answer_id": "abc"}', '{"correction_id": 2}', "\udcff", [], [1], [None], {}, {"id": 5}, {"id": None},
    [{}], [{"action_id": 5}], {"type": 7},
]  # fmt: skip


def mutate(value: Any, rng: random.Random) -> Any:
    """One random change somewhere inside `value`: a key dropped, a value swapped for junk."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        out = dict(value)
        key = rng.choice(list(out))
        roll = rng.random()
        if roll < 0.3:
            del out[key]
        elif roll < 0.6:
            out[key] = rng.choice(JUNK)
        else:
            out[key] = mutate(out[key], rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        out_list[i] = mutate(out_list[i], rng) if rng.random() < 0.6 else rng.choice(JUNK)
        return out_list
    return rng.choice(JUNK)


Template = tuple[str, Callable[[], dict[str, Any]]]  # how it is sent ("json", "payload", "form"), what


def templates(bot: Bot, answered: dict[str, Any]) -> list[Template]:
    """Real Slack payloads around a real answer (`answered`, the bot's message), built fresh each time."""
    answer_id = answered["metadata"]["event_payload"]["answer_id"]
    question = bot.slack.add_message("C1", "U1", QUESTION)
    modal = blocks.correction_modal(
        answer_id=answer_id, answer_text="x", channel="C1", thread_ts=answered["ts"]
    )
    click = review_blocks.ReviewClick(review_blocks.EDIT_ACTION, 1, REVIEWER, "CREVIEW", "1.0", "t")
    buttons = [
        (translate.CORRECTION_ACTION, str(answer_id)),
        (translate.FEEDBACK_ACTION, f"down:{answer_id}"),
        (review_blocks.APPROVE_ACTION, "1"),
        (review_blocks.EDIT_ACTION, "1"),
        (review_blocks.REJECT_ACTION, "1"),
    ]
    reaction = reaction_event("reaction_added", "-1", user="U2", channel="C1", ts=answered["ts"])
    thread = {
        "type": "assistant_thread_started",
        "assistant_thread": {"channel_id": "D1", "thread_ts": "1.0"},
    }
    command = {
        "command": "/chatbot",
        "text": "help",
        "user_id": "U1",
        "channel_id": "C1",
        "team_id": "T0TEST",
    }
    made: list[Template] = [
        ("json", lambda: event_callback(mention(question, "C1"))),
        ("json", lambda: event_callback(reaction)),
        ("json", lambda: event_callback(thread)),
        ("json", lambda: {"type": "url_verification", "challenge": "abc", "token": "t"}),
        ("payload", lambda: view_submission(user="U2", view=modal, text="You get 30 days.")),
        (
            "payload",
            lambda: view_submission(user=REVIEWER, view=review_blocks.edit_modal(click, "x"), text="y"),
        ),
        (
            "payload",
            lambda: view_submission(user=REVIEWER, view=review_blocks.reject_modal(click), text="no"),
        ),
        ("form", lambda: command),
    ]
    for action_id, value in buttons:
        action = {"type": "button", "action_id": action_id, "block_id": "b", "value": value}
        made.append(
            (
                "payload",
                lambda a=action: block_actions(user=REVIEWER, channel="C1", message=answered, action=a),
            )
        )
    return made


def encode(how: str, payload: Any) -> tuple[bytes, str]:
    if how == "json":
        return json.dumps(payload).encode(), "application/json"
    if how == "payload":
        return urlencode({"payload": json.dumps(payload)}).encode(), FORM
    return urlencode(payload).encode(), FORM


def mangled(rng: random.Random, template: Template) -> tuple[bytes, str]:
    how, make = template
    roll = rng.random()
    if roll < 0.7:  # a Slack payload with fields dropped or of the wrong type
        payload: Any = make()
        if how == "form":  # a form holds only strings: drop or blank a field
            return encode(how, {k: v for k, v in payload.items() if rng.random() < 0.7})
        for _ in range(rng.randint(1, 3)):
            payload = mutate(payload, rng)
        return encode(how, payload)
    body, content_type = encode(how, make())
    if roll < 0.85:  # the bytes themselves damaged: cut short, or one byte changed
        i = rng.randrange(len(body))
        body = body[:i] if rng.random() < 0.5 else body[:i] + bytes([rng.randrange(256)]) + body[i + 1 :]
        return body, rng.choice([content_type, "application/json", FORM, "text/plain"])
    junk = rng.choice([b"x", b"[1]", b"payload=x", b"\xff\xfe", b"{", b"null", b"7", b'"x"', b"[[[[[["])
    return junk * rng.randint(1, 3), rng.choice(["application/json", FORM, "text/plain"])


def signed_headers(body: bytes, content_type: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Signed as Slack signs: over the raw bytes, whatever they are."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def unsigned_headers(rng: random.Random, body: bytes, content_type: str) -> dict[str, str]:
    """No signature, a wrong one, a stale or malformed timestamp."""
    headers = signed_headers(body, content_type)
    roll = rng.random()
    if roll < 0.25:
        return {"Content-Type": content_type}
    if roll < 0.45:
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif roll < 0.65:
        headers["X-Slack-Request-Timestamp"] = rng.choice(["abc", "", "-1", "1e9", "+12", "1_0", "9" * 20])
    elif roll < 0.8:
        return signed_headers(body, content_type, timestamp=int(time.time()) - 3600)
    else:
        headers["X-Slack-Signature"] = rng.choice(["", "v0=", "v1=abc", "v0=" + "A" * 64])
    return headers


def with_review_desk(deps: Deps) -> None:
    deps.review = ReviewDesk(
        deps.records.database, ReviewPolicy.of(reviewers=[REVIEWER], approvals_required=1)
    )
    deps.review_channel = "CREVIEW"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path, configure=with_review_desk) as running:
        yield running


async def test_generated_bodies_never_get_a_5xx_and_the_bot_stays_healthy(bot: Bot) -> None:
    asked = bot.slack.add_message("C1", "U1", QUESTION)
    await bot.send_event(mention(asked, "C1"))
    await bot.slack.wait_for_replies(channel="C1")
    await bot.settled()
    rng = random.Random(SEED)
    made = templates(bot, bot.slack.messages["C1"][-1])
    started = time.monotonic()
    statuses: dict[int, int] = {}
    failures: list[tuple[int, bytes]] = []
    for _ in range(ROUNDS):
        body, content_type = mangled(rng, rng.choice(made))
        signed = rng.random() < 0.6
        headers = signed_headers(body, content_type) if signed else unsigned_headers(rng, body, content_type)
        response = await bot.http.post("/slack/events", content=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            failures.append((response.status_code, body[:400]))
        if not signed:
            assert response.status_code == 401, body[:300]
    assert failures == []
    assert time.monotonic() - started < 30
    await bot.settled(timeout=30)
    health = await bot.http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # Still answering: a real question after the storm.
    message = bot.slack.add_message("C7", "U1", QUESTION)
    response, _ = await bot.send_event(mention(message, "C7"))
    assert response.status_code == 200
    await bot.slack.wait_for_replies(channel="C7")
