"""A bounded fuzz of `/api/messages` in Emulator mode, from this machine: a few hundred activities in
Teams' shapes with fields mangled, retyped or dropped (a fixed seed, so a failure reproduces), and
bodies that are no activity at all. None may get a 5xx (an invoke the bot does not offer included:
400, not botbuilder's 501), or fail a turn in the log, and the bot must still answer /healthz
promptly afterwards."""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import pytest

from bot.teams import translate
from tests.support.teams_activities import (
    GRACE,
    card_execute,
    card_submit,
    channel_thread,
    feedback_invoke,
    group_chat,
    message,
    reaction,
)
from tests.support.teams_harness import running_teams_bot

SEED = 20250611
ACTIVITIES = 300
BODIES = 100

ODD_VALUES: list[Any] = [
    None,
    "",
    "x",
    " ",
    0,
    -1,
    2**31,
    2**63,
    -(2**63) - 1,
    1.5,
    float("1e308"),
    True,
    False,
    [],
    {},
    [1, "a", None],
    {"a": {"b": []}},
    "\x00",
    "<at>Chatbot</at>",
    "\u202e\ud7ff🙂",
    "9" * 40,
    "x" * 5000,
    "like",
    "dislike",
    "suggestCorrection",
    translate.FEEDBACK_INVOKE,
    translate.CARD_INVOKE,
]
TYPES = ["message", "invoke", "messageReaction", "conversationUpdate", "typing", "event", "", "x", None, 7]


def templates(service_url: str) -> list[dict[str, Any]]:
    form = {"action": "suggestCorrection", "answer_id": 1, "correction": "Better."}
    return [
        message("How many days of leave?", service_url=service_url),
        message(
            "status", service_url=service_url, conversation=channel_thread("1718000000001"), mention=True
        ),
        message("help", service_url=service_url, conversation=group_chat(), mention=True),
        feedback_invoke("1718100000000", "dislike", service_url=service_url, text="wrong"),
        reaction("1718100000000", service_url=service_url, added=["like"], removed=["heart"], user=GRACE),
        card_execute("1718100000000", form, service_url=service_url),
        card_submit("1718100000000", form, service_url=service_url),
        message("", service_url=service_url)
        | {"type": "conversationUpdate", "membersAdded": [{"id": "28:bot"}, {"id": "29:someone"}]},
        message("", service_url=service_url) | {"type": "invoke", "name": "composeExtension/query"},
    ]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value, as the keys and indexes that lead there."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*prefix, index))
    return found


def mangle(activity: dict[str, Any], rng: random.Random, service_url: str) -> dict[str, Any]:
    activity = copy.deepcopy(activity)
    for _ in range(rng.randint(1, 4)):
        place = rng.choice(paths(activity)[1:])
        *parents, last = place
        holder: Any = activity
        for key in parents:
            holder = holder[key]
        if rng.random() < 0.2 and isinstance(holder, dict):
            del holder[last]
        else:
            holder[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        if not isinstance(activity, dict) or "type" not in activity:
            break
    if rng.random() < 0.3:
        activity["type"] = rng.choice(TYPES)
    if rng.random() < 0.2:
        activity["name"] = copy.deepcopy(rng.choice(ODD_VALUES))
    if rng.random() < 0.8:  # mostly where the bot may reply, so the handlers run
        activity["serviceUrl"] = service_url
    return activity


def garbage(rng: random.Random) -> tuple[bytes, str]:
    """A body that is not an activity, and its Content-Type."""
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300)), "application/json"
    if kind == 1:
        whole = json.dumps(message("hi", service_url="http://127.0.0.1:9/"))
        return whole[: rng.randint(0, len(whole) - 1)].encode(), "application/json"
    if kind == 2:
        return json.dumps(rng.choice(ODD_VALUES)).encode(), "application/json"
    if kind == 3:
        return b"[" * 5000 + b"]" * 5000, "application/json"
    if kind == 4:
        return b'{"type": "message", "text": "\xff\xfe"}', "application/json"
    if kind == 5:
        return b"payload=x", "application/x-www-form-urlencoded"
    if kind == 6:
        return json.dumps({"type": "message"}).encode(), rng.choice(["text/plain", "", "application/jsonx"])
    return b'{"type": "message", "text": ' + b'"a' * 20000 + b"}", "application/json"


async def test_mangled_activities_and_garbage_never_get_a_5xx(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    async with running_teams_bot(tmp_path, admin_ids=["6a7b8c9d-0000-4e1f-8a2b-3c4d5e6f7a8b"]) as bot:
        shapes = templates(bot.service_url)
        failures = []
        for number in range(ACTIVITIES):
            activity = mangle(rng.choice(shapes), rng, bot.service_url)
            response = await bot.send(activity)
            if response.status_code >= 500:
                failures.append((number, response.status_code, json.dumps(activity)[:600]))
        for number in range(BODIES):
            body, content_type = garbage(rng)
            response = await bot.http.post(
                "/api/messages", content=body, headers={"Content-Type": content_type}
            )
            if response.status_code >= 500:
                failures.append((ACTIVITIES + number, response.status_code, repr(body[:200])))
        await bot.settled(timeout=30)
        assert failures == []

        health_started = time.monotonic()
        health = await bot.http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert time.monotonic() - health_started < 1.0

    failed_turns = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("bot.")]
    assert [r.getMessage() for r in failed_turns] == []
    assert time.monotonic() - started < 60
