"""A bounded fuzz of the console's POST routes over real HTTP against the bot's real app and store
(SQLite and PostgreSQL): a few hundred requests generated from a fixed seed – mangled JSON and form
bodies, ids of every size, odd content types, cookies and Origins – signed in and not, with the
form's CSRF token and without. None may get a 5xx, and afterwards the bot answers /healthz as before
and still answers a question."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from feedback.db import Database
from tests.support.console import running_console

SEED = 21
REQUESTS = 400
IDS: list[Any] = [1, 2, 0, -1, 2**31 - 1, 2**31, 2**63, 10**20, "1", "abc", None, True, 1.5, [1], {"a": 1}]
PATH_IDS = ["1", "2", "0", "2147483648", str(2**63), "99999999999999999999", "9" * 5000, "١", "-1", "x"]
TEXTS = [
    "",
    " ",
    "Leave?",
    "a\x00b",
    "\ud800",
    "x" * 5000,
    "<script>alert(1)</script>",
    "'; DROP TABLE vote;--",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=bogus",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "",
]


def _json_body(rng: random.Random, route: str) -> bytes:
    """Mostly a valid call with a field or two mangled; sometimes anything at all."""
    valid: dict[str, Any] = {
        "ask": {"question": "How much leave?", "user": "carol"},
        "vote": {"answer_id": 1, "value": 1, "user": "carol"},
        "correction": {"answer_id": 1, "text": "Thirty days.", "user": "carol"},
    }[route]
    fields = dict(valid) if rng.random() < 0.7 else {}
    for key in rng.sample(["question", "answer_id", "value", "text", "user"], rng.randint(0, 3)):
        fields[key] = rng.choice(
            {
                "answer_id": IDS,
                "value": [1, -1, 0, 2, "1", None, True, 1.0],
                "user": [*TEXTS[:6], "UADMIN", "console:admin", "x" * 65, 7],
            }.get(key, [*TEXTS, None, 3, [], {}])
        )
    text = json.dumps(fields if rng.random() < 0.9 else list(fields.values()))
    mangle = rng.random()
    if mangle < 0.1:
        return text[: rng.randint(0, len(text))].encode()  # truncated
    if mangle < 0.15:
        return b"[" * 20_000  # nested too deep
    if mangle < 0.2:
        return text.encode() + b"\xff\xfe"  # not UTF-8
    return text.encode()


def _form_body(rng: random.Random, csrf: str) -> bytes:
    fields = {
        "csrf": rng.choice([csrf, csrf, "", "x", "é", csrf + "x"]),
        "token": rng.choice(["", "guess", "s3cret-console-token-for-tests"]),
        "text": rng.choice(TEXTS),
        "reason": rng.choice(TEXTS),
        "next": rng.choice(["/console/model", "//evil.example", "\\\\x", ""]),
    }
    body = "&".join(f"{k}={v}" for k, v in fields.items() if rng.random() < 0.8).encode(
        "utf-8", "surrogatepass"
    )
    mangle = rng.random()
    if mangle < 0.15:
        return b'--xyz\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + csrf.encode()  # truncated
    if mangle < 0.25:
        return body + b"&x=%ff\xff"
    if mangle < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    return body


def _request(rng: random.Random, csrf: str) -> tuple[str, bytes, dict[str, bytes]]:
    route = rng.choice(["login", "ask", "vote", "correction", "review", "review", "retrain", "rollback"])
    if route in ("ask", "vote", "correction"):
        path, body = f"/console/api/{route}", _json_body(rng, route)
        content_type = "application/json" if rng.random() < 0.7 else rng.choice(CONTENT_TYPES)
    else:
        path = {
            "login": "/console/login",
            "retrain": "/console/model/retrain",
            "rollback": "/console/model/rollback",
        }.get(route) or f"/console/review/{rng.choice(PATH_IDS)}/{rng.choice(['approve', 'edit', 'reject'])}"
        body = _form_body(rng, csrf)
        content_type = (
            "application/x-www-form-urlencoded" if rng.random() < 0.6 else rng.choice(CONTENT_TYPES)
        )
    headers = {"Content-Type": content_type.encode()} if content_type else {}
    if rng.random() < 0.1:
        headers["Origin"] = rng.choice(["null", "http://[::1", "https://evil.example", "http://é"]).encode()
    return path, body, headers


async def test_the_console_survives_a_few_hundred_mangled_requests(
    database: Database, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    async with running_console(database, tmp_path) as c:
        answer = await c.answer("How many days of leave do I get?", user="carol")
        await c.http.post(
            "/console/api/correction", json={"answer_id": answer["answer_id"], "text": "30 days."}
        )
        before = (await c.http.get("/healthz")).status_code
        await c.login()
        csrf = await c.csrf()
        signed_in = dict(c.http.cookies)
        statuses: dict[int, int] = {}
        for _ in range(REQUESTS):
            path, body, headers = _request(rng, csrf)
            c.http.cookies.clear()
            if rng.random() < 0.6:
                c.http.cookies.update(signed_in)
            elif rng.random() < 0.2:
                headers["Cookie"] = rng.choice(
                    ["console_admin=é.é", "console_admin=" + "W" * 4000 + ".x"]
                ).encode()
            response = await c.http.post(path, content=body, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (path, body[:200], headers, response.text[:500])
        c.http.cookies.clear()
        assert (await c.http.get("/healthz")).status_code == before
        assert (await c.answer("Where do I park?"))["text"]
    assert sum(n for status, n in statuses.items() if status < 400) >= 5, statuses  # not all refused
    assert time.monotonic() - started < 60
