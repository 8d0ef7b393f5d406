"""The console's chat over real HTTP against the bot's real aiohttp app and store (SQLite and
PostgreSQL): ask -> an event stream with the answer and its sources, recorded like Slack's; votes
stored and changeable; corrections stored pending; bad input refused with a clear message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlmodel import select

from feedback import queries
from feedback.db import Database
from feedback.models import Answer, Correction, Question, Vote
from tests.support.console import running_console


def _rows(database: Database) -> tuple[list[Question], list[Answer], list[Vote], list[Correction]]:
    with database.reader() as s:
        return (
            list(s.exec(select(Question))),
            list(s.exec(select(Answer))),
            list(s.exec(select(Vote))),
            list(s.exec(select(Correction))),
        )


async def test_the_root_and_the_chat_page(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        root = await c.http.get("/", follow_redirects=False)
        assert root.status_code == 303 and root.headers["Location"] == "/console/"
        page = await c.http.get("/console/")
        assert page.status_code == 200
        for marker in ('id="question"', 'id="ask"', 'id="user-name"', 'data-testid="vote-up"'):
            assert marker in page.text
        assert "console_user" in page.cookies  # an anonymous id for this browser
        script = await c.http.get("/console/static/chat.js")
        assert script.status_code == 200 and "/console/api/ask" in script.text


async def test_ask_streams_the_answer_with_sources_and_records_it(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        response, events = await c.ask("How many days of leave do I get?", user="alice")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        names = [name for name, _ in events]
        assert names[0] == "status" and names[-1] == "answer"
        assert set(names[1:-1]) == {"delta"} and len(names) - 2 >= 5  # the answer, word by word
        answer = events[-1][1]
        assert answer["text"] == "You get 27 days of leave a year."
        assert "".join(data["text"] for name, data in events if name == "delta") == answer["text"]
        assert answer["sources"][0]["title"] == "Annual Leave > Allowance"
        assert answer["sources"][0]["url"].startswith("https://wiki.larkspur.example/leave")
        assert answer["adapter"] == "kb-v1" and answer["confidence"] is not None

        [question], [row], _, _ = _rows(database)
        assert (question.platform, question.user_id, question.text) == (
            "web",
            "alice",
            "How many days of leave do I get?",
        )
        assert row.id == answer["answer_id"] and row.question_id == question.id
        assert row.platform == "web" and row.adapter == "kb-v1"
        assert [s["id"] for s in row.sources] == ["leave-1", "leave-2"]
        assert row.confidence == answer["confidence"]


async def test_an_anonymous_asker_gets_the_cookie_id(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        await c.http.get("/console/")  # the page hands out the id
        uid = c.http.cookies["console_user"]
        await c.answer()
        [question], *_ = _rows(database)
        assert question.user_id == uid and uid.startswith("web-")


async def test_the_model_server_down_is_a_sentence_and_the_question_is_kept(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        c.model.down = True
        response, events = await c.ask("How many days of leave do I get?")
        assert response.status_code == 200
        name, data = events[-1]
        assert name == "error" and "can't reach my language model" in data["message"]
        assert "ConnectError" not in response.text and "Traceback" not in response.text
        questions, answers, _, _ = _rows(database)
        assert len(questions) == 1 and answers == []


async def test_bad_questions_are_refused_clearly_and_nothing_is_recorded(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        empty = await c.http.post("/console/api/ask", json={"question": "   "})
        assert empty.status_code == 400 and "question was empty" in empty.json()["error"]
        not_json = await c.http.post("/console/api/ask", content=b"question=hi")
        assert not_json.status_code == 400 and "not a JSON object" in not_json.json()["error"]
        long = await c.http.post("/console/api/ask", json={"question": "x" * 5000})
        assert long.status_code == 400 and "under 4000 characters" in long.json()["error"]
        bad_name = await c.http.post("/console/api/ask", json={"question": "hi", "user": "a\nb"})
        assert bad_name.status_code == 400 and "1 to 64 characters" in bad_name.json()["error"]
        other_site = await c.http.post(
            "/console/api/ask", json={"question": "hi"}, headers={"Origin": "https://evil.example"}
        )
        assert other_site.status_code == 403
        assert _rows(database) == ([], [], [], [])


async def test_votes_are_stored_like_slacks_and_can_be_changed_and_withdrawn(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        answer = await c.answer(user="bob")
        aid = answer["answer_id"]
        up = await c.http.post("/console/api/vote", json={"answer_id": aid, "value": 1, "user": "bob"})
        assert up.status_code == 200 and up.json()["ok"]
        with database.reader() as s:
            [vote] = queries.votes_for(s, aid)
        assert (vote.user_id, vote.value, vote.source) == ("bob", 1, "console")

        down = await c.http.post("/console/api/vote", json={"answer_id": aid, "value": -1, "user": "bob"})
        assert down.status_code == 200
        with database.reader() as s:
            assert [(v.user_id, v.value) for v in queries.votes_for(s, aid)] == [("bob", -1)]

        await c.http.post("/console/api/vote", json={"answer_id": aid, "value": 0, "user": "bob"})
        with database.reader() as s:
            assert queries.votes_for(s, aid) == []


async def test_bad_votes_are_refused(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        answer = await c.answer()
        for body in (
            {"answer_id": answer["answer_id"], "value": 2},
            {"answer_id": answer["answer_id"], "value": True},
            {"answer_id": "1", "value": 1},
            {"value": 1},
        ):
            response = await c.http.post("/console/api/vote", json=body)
            assert response.status_code == 400, body
            assert "value of 1, -1 or 0" in response.json()["error"]
        missing = await c.http.post("/console/api/vote", json={"answer_id": 999, "value": 1})
        assert missing.status_code == 404 and "reload the page" in missing.json()["error"]
        assert _rows(database)[2] == []


async def test_only_console_answers_take_console_votes(database: Database, tmp_path: Path) -> None:
    from tests.support import feedback_seed as seed

    async with running_console(database, tmp_path) as c:
        slack_answer = seed.answer(database)
        response = await c.http.post("/console/api/vote", json={"answer_id": slack_answer, "value": 1})
        assert response.status_code == 404
        assert _rows(database)[2] == []


async def test_a_correction_is_stored_pending_for_review(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        answer = await c.answer(user="carol")
        text = "Full-time staff get 30 days of leave a year."
        response = await c.http.post(
            "/console/api/correction", json={"answer_id": answer["answer_id"], "text": text, "user": "carol"}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "pending"
        *_, [correction] = _rows(database)
        assert correction.id == body["correction_id"]
        assert (correction.author, correction.text, correction.status) == ("carol", text, "pending")
        assert [case.correction.id for case in c.deps.review.queue()] == [correction.id]  # type: ignore[union-attr]

        empty = await c.http.post(
            "/console/api/correction", json={"answer_id": answer["answer_id"], "text": " "}
        )
        assert empty.status_code == 400 and "needs some text" in empty.json()["error"]
        assert len(_rows(database)[3]) == 1


async def test_chat_from_another_machine_needs_a_login_unless_opened(
    database: Database, tmp_path: Path
) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    async with running_console(database, tmp_path) as c:
        page = await c.http.get("/console/", headers=forwarded, follow_redirects=False)
        assert page.status_code == 303 and page.headers["Location"].startswith("/console/login")
        refused = await c.http.post("/console/api/ask", json={"question": "hi"}, headers=forwarded)
        assert refused.status_code == 403 and "CONSOLE_CHAT_OPEN" in refused.json()["error"]
        await c.login()
        allowed = await c.http.post("/console/api/ask", json={"question": "hi"}, headers=forwarded)
        assert allowed.status_code == 200
    async with running_console(database, tmp_path, admin_token="", chat_open=False) as c:
        page = await c.http.get("/console/", headers=forwarded)
        assert page.status_code == 403 and "CONSOLE_CHAT_OPEN" in page.text
    async with running_console(database, tmp_path, chat_open=True) as c:
        page = await c.http.get("/console/", headers=forwarded)
        assert page.status_code == 200


async def _next_event(lines: Any) -> tuple[str, dict[str, Any]]:
    """The next server-sent event from an `aiter_lines()` iterator."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                return fields["event"], json.loads(fields["data"])
            continue
        key, _, value = line.partition(": ")
        fields[key] = value
    raise AssertionError(f"the stream ended mid-event: {fields}")


async def test_the_answer_streams_in_as_the_model_writes_it(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        c.model.gate = asyncio.Event()  # the model stops after two words until the test lets it go
        request = {"question": "How many days of leave do I get?", "user": "carol"}
        async with c.http.stream("POST", "/console/api/ask", json=request) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            first = [await asyncio.wait_for(_next_event(lines), 10) for _ in range(3)]
            # two words are in the browser while the model is still writing; nothing is recorded yet
            assert first == [
                ("status", {"stage": "thinking"}),
                ("delta", {"text": "You"}),
                ("delta", {"text": " get"}),
            ]
            assert _rows(database)[1] == []
            c.model.gate.set()
            rest = []
            while not rest or rest[-1][0] != "answer":
                rest.append(await asyncio.wait_for(_next_event(lines), 10))
        deltas = [data["text"] for name, data in first + rest if name == "delta"]
        answer = rest[-1][1]
        assert len(deltas) >= 5 and "".join(deltas) == answer["text"] == "You get 27 days of leave a year."
        _, [row], _, _ = _rows(database)
        assert (row.id, row.text, row.confidence) == (
            answer["answer_id"],
            answer["text"],
            answer["confidence"],
        )
        assert answer["confidence"] is not None and answer["sources"]


async def test_a_model_failing_midway_ends_with_a_sentence_and_no_answer_row(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        c.model.fail_after = 3
        response, events = await c.ask("How many days of leave do I get?")
        names = [name for name, _ in events]
        assert names == ["status", "delta", "delta", "delta", "error"]
        assert "can't reach my language model" in events[-1][1]["message"]
        assert "engine died" not in response.text  # the server's own words stay in the log
        questions, answers, _, _ = _rows(database)
        assert len(questions) == 1 and answers == []
