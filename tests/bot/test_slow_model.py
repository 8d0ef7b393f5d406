"""A model server that accepts connections and never answers, one that refuses them, and one that
stalls mid-answer: real local TCP servers behind the real client, pipeline, Slack app, Teams
adapter and console. The asker hears within ANSWER_TIMEOUT_SECONDS (small here), the question stays
recorded, and /healthz says the model server is down without hammering it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sqlmodel import select

from bot.errors import AnswerDelayed, AnswerUnavailable
from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.pipeline import Answer, Delta, Pipeline, Question
from bot.prompts import approx_tokens
from bot.server import build_app
from chatbot import wiring
from chatbot.bot_process import application
from chatbot.settings import Settings
from feedback.db import Database
from feedback.models import Answer as AnswerRow
from feedback.models import Question as QuestionRow
from model_server.client import AsyncModelClient
from model_server.health import HealthCache, ThreadedHealthCache
from tests.support.common import serving
from tests.support.console import running_console
from tests.support.fakes import PASSAGES, FakeModel, FakeRetriever
from tests.support.slack_harness import running_bot
from tests.support.slack_payloads import mention
from tests.support.teams_harness import running_teams_bot

BOUND = 0.5  # the answer timeout these tests run with
SLACK = 2.0  # what the bound may overrun by on a busy machine; far below the client's own 120 s
QUESTION = "How many days of leave do I get?"


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server that accepts every connection, reads, and never answers; its URL and how many
    connections it has accepted."""
    accepted: list[int] = []
    open_writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        open_writers.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        for writer in open_writers:
            writer.close()
        server.close()


@contextmanager
def refusing_port() -> Iterator[str]:
    """A URL whose port is bound but not listening: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def stalling_server() -> AsyncIterator[str]:
    """Starts streaming an answer (two words), then never sends the rest."""

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("You", " get"):
            chunk = {"model": "kb-v1", "choices": [{"delta": {"content": word}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await asyncio.sleep(3600)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with serving(app) as url:
        yield url


def _rows(database: Database) -> tuple[list[QuestionRow], list[AnswerRow]]:
    with database.reader() as s:
        return list(s.exec(select(QuestionRow))), list(s.exec(select(AnswerRow)))


def _pipeline(database: Database, url: str, timeout: float = BOUND) -> Pipeline:
    # The client as production builds it: its own 120 s timeout and connection retries.
    return Pipeline(
        retriever=FakeRetriever(PASSAGES),
        client=AsyncModelClient(url),
        model_name=lambda: "kb-v1",
        database=database,
        answer_timeout=timeout,
    )


async def _ask(pipeline: Pipeline, streamed: bool) -> list[Delta | Answer]:
    question = Question(QUESTION, platform="slack", user_id="U7")
    if not streamed:
        return [await pipeline.answer(question)]
    return [item async for item in pipeline.answer_stream(question)]


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_a_silent_model_server_is_late_within_the_bound_and_the_question_is_kept(
    database: Database, streamed: bool
) -> None:
    async with silent_server() as (url, accepted):
        pipeline = _pipeline(database, url)
        started = time.monotonic()
        with pytest.raises(AnswerDelayed) as raised:
            await _ask(pipeline, streamed)
        took = time.monotonic() - started
        await pipeline.client.aclose()
    assert BOUND <= took < BOUND + SLACK
    assert accepted  # it really was connected and left waiting, not refused
    assert "taking too long" in raised.value.user_message
    [question], answers = _rows(database)
    assert (question.id, question.user_id, question.text) == (raised.value.question_id, "U7", QUESTION)
    assert answers == []


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_a_refusing_model_server_is_unavailable_at_once(database: Database, streamed: bool) -> None:
    with refusing_port() as url:
        # a bound above the client's connection retries (0.2 s, then 0.4 s): refused, not late
        pipeline = _pipeline(database, url, timeout=5.0)
        started = time.monotonic()
        with pytest.raises(AnswerUnavailable) as raised:
            await _ask(pipeline, streamed)
        took = time.monotonic() - started
        await pipeline.client.aclose()
    assert took < 2.0 and not isinstance(raised.value, AnswerDelayed)
    assert "can't reach my language model" in raised.value.user_message
    assert len(_rows(database)[0]) == 1


async def test_a_stream_that_stalls_midway_ends_within_the_bound(database: Database) -> None:
    async with stalling_server() as url:
        pipeline = _pipeline(database, url)
        seen: list[str] = []
        started = time.monotonic()
        with pytest.raises(AnswerDelayed):
            async for item in pipeline.answer_stream(Question(QUESTION)):
                assert isinstance(item, Delta)
                seen.append(item.text)
        took = time.monotonic() - started
        await pipeline.client.aclose()
    assert "".join(seen) == "You get" and took < BOUND + SLACK
    assert [len(rows) for rows in _rows(database)] == [1, 0]


async def test_slack_asker_is_told_the_answer_is_late(tmp_path: Path) -> None:
    async with silent_server() as (url, _), running_bot(tmp_path, model=FakeModel()) as bot:
        await bot.deps.pipeline.client.aclose()
        bot.deps.pipeline.client = AsyncModelClient(url)
        bot.deps.pipeline.answer_timeout = BOUND
        started = time.monotonic()
        message = bot.slack.add_message("C1", "U1", f"<@U0BOT> {QUESTION}")
        response, _ = await bot.send_event(mention(message, "C1"))
        assert response.status_code == 200
        [post] = await bot.slack.wait_for_replies()
        assert time.monotonic() - started < BOUND + SLACK
        assert post["thread_ts"] == message["ts"]
        assert AnswerDelayed.user_message in json.dumps(post)
        assert "Timeout" not in json.dumps(post)
        [question], answers = _rows(bot.database)
        assert question.user_id == "U1" and QUESTION in question.text and answers == []


async def test_teams_asker_is_told_the_answer_is_late(tmp_path: Path) -> None:
    async with silent_server() as (url, _), running_teams_bot(tmp_path) as bot:
        await bot.deps.pipeline.client.aclose()
        bot.deps.pipeline.client = AsyncModelClient(url)
        bot.deps.pipeline.answer_timeout = BOUND
        started = time.monotonic()
        reply = await bot.ask(QUESTION)
        assert time.monotonic() - started < BOUND + SLACK
        assert reply.activity["text"] == AnswerDelayed.user_message
        [question], answers = _rows(bot.database)
        assert question.text == QUESTION and answers == []


async def test_console_asker_is_told_the_answer_is_late(database: Database, tmp_path: Path) -> None:
    async with silent_server() as (url, _), running_console(database, tmp_path) as c:
        await c.deps.pipeline.client.aclose()
        c.deps.pipeline.client = AsyncModelClient(url)
        c.deps.pipeline.answer_timeout = BOUND
        started = time.monotonic()
        response, events = await c.ask(QUESTION, user="alice")
        assert time.monotonic() - started < BOUND + SLACK and response.status_code == 200
        assert [name for name, _ in events] == ["status", "error"]
        assert events[-1][1]["message"] == AnswerDelayed.user_message
        [question], answers = _rows(database)
        assert (question.user_id, question.text) == ("alice", QUESTION) and answers == []


def _health_app(
    url: str, *, timeout: float = 2.0, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    client = AsyncModelClient(url)
    health = HealthCache(lambda seconds: client.health(timeout=seconds), timeout=timeout, clock=clock)

    async def close(_: web.Application) -> None:
        await client.aclose()

    app = build_app(model_health=health)
    app.on_cleanup.append(close)
    return app


async def test_healthz_says_degraded_while_the_model_server_is_silent() -> None:
    async with (
        silent_server() as (model_url, _),
        serving(_health_app(model_url, timeout=0.3)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        started = time.monotonic()
        response = await http.get("/healthz")
        assert time.monotonic() - started < 0.3 + SLACK
        # 200: the bot still records votes, serves the console and tells askers kindly (README)
        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "model_server": "down",
            "slack": "off",
            "in_flight": 0,
        }


async def test_healthz_says_degraded_while_the_model_server_refuses() -> None:
    with refusing_port() as model_url:
        async with serving(_health_app(model_url)) as url, httpx.AsyncClient(base_url=url) as http:
            body = (await http.get("/healthz")).json()
    assert (body["status"], body["model_server"]) == ("degraded", "down")


async def test_healthz_asks_the_model_server_once_for_a_flood_of_checks() -> None:
    probes: list[float] = []
    now = [0.0]  # the cache's clock: only this test moves it

    async def health(_: web.Request) -> web.Response:
        probes.append(now[0])
        await asyncio.sleep(0.1)  # still working when the rest of the flood arrives
        return web.json_response({})

    model = web.Application()
    model.router.add_get("/health", health)
    async with (
        serving(model) as model_url,
        serving(_health_app(model_url, clock=lambda: now[0])) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        flood = await asyncio.gather(*(http.get("/healthz") for _ in range(30)))
        assert {r.json()["model_server"] for r in flood} == {"up"}
        assert {r.json()["status"] for r in flood} == {"ok"}
        now[0] = 4.9  # within the cache's 5 s: not asked again
        assert (await http.get("/healthz")).json()["status"] == "ok" and len(probes) == 1
        now[0] = 5.0
        assert (await http.get("/healthz")).json()["status"] == "ok" and probes == [0.0, 5.0]


def test_the_threaded_cache_probes_once_per_ttl_and_counts_a_failing_probe_as_down() -> None:
    now = [0.0]
    calls: list[float] = []

    def probe(timeout: float) -> bool:
        calls.append(timeout)
        if len(calls) == 2:
            raise OSError("refused")
        return True

    cache = ThreadedHealthCache(probe, ttl=5.0, timeout=1.5, clock=lambda: now[0])
    assert [cache.up() for _ in range(10)] == [True] * 10 and calls == [1.5]
    now[0] = 5.0
    assert cache.up() is False and len(calls) == 2


async def test_the_bot_built_from_settings_bounds_answers_and_reports_the_model_server(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chatbot.bot_process.application` with the real `build_pipeline`: ANSWER_TIMEOUT_SECONDS and
    MODEL_SERVER_URL reach the pipeline and /healthz (only the model files are stood in for)."""
    db_url = database.url
    knowledge = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    knowledge.add_document(
        "# Annual leave\n\nEveryone gets 27 days of leave a year.", source="leave.md", title="Annual leave"
    )
    knowledge.refresh(force=True)
    monkeypatch.setattr(wiring, "open_knowledge", lambda settings: knowledge)
    monkeypatch.setattr(wiring, "prepare_base_model", lambda *a, **kw: tmp_path)
    monkeypatch.setattr(wiring, "token_counter", lambda model_dir: approx_tokens)
    async with silent_server() as (model_url, _):
        settings = Settings(database_url=db_url, model_server_url=model_url, answer_timeout_seconds=BOUND)
        async with serving(await application(settings)) as url, httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200
            assert (health.json()["status"], health.json()["model_server"]) == ("degraded", "down")
            started = time.monotonic()
            asked = await http.post("/console/api/ask", json={"question": QUESTION})
            assert time.monotonic() - started < BOUND + SLACK
            assert json.dumps(AnswerDelayed.user_message) in asked.text
    assert [q.text for q in _rows(database)[0]] == [QUESTION]
