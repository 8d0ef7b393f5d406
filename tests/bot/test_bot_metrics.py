"""The bot's /metrics over real HTTP: Prometheus text whose counters move with answers, votes and
corrections, and whose active-adapter gauge follows SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.pipeline import Pipeline
from chatbot import wiring
from chatbot.bot_process import application
from chatbot.settings import Settings
from feedback.db import Database
from tests.support import feedback_seed as seed
from tests.support.common import serving
from tests.support.console import TOKEN, Console, running_console
from tests.support.fakes import FakeModel
from tests.support.slack_api import BOT_TOKEN, SIGNING_SECRET, SlackServer
from tests.support.slack_harness import make_deps
from tests.support.slack_payloads import event_callback, mention, signature_headers


async def _samples(c: Console) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await c.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def test_metrics_move_after_an_answer_a_vote_and_a_correction(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        before = await _samples(c)
        answered = ("chatbot_answers_total", (("outcome", "answered"), ("platform", "web")))
        assert answered not in before
        assert before[("chatbot_votes", (("value", "up"),))] == 0
        assert before[("chatbot_active_adapter", (("adapter", "base"),))] == 1

        answer = await c.answer(user="dana")
        await c.http.post(
            "/console/api/vote", json={"answer_id": answer["answer_id"], "value": 1, "user": "dana"}
        )
        await c.http.post(
            "/console/api/correction", json={"answer_id": answer["answer_id"], "text": "30 days."}
        )
        after = await _samples(c)
        assert after[answered] == 1
        assert after[("chatbot_answer_seconds_count", (("platform", "web"),))] == 1
        assert after[("chatbot_answer_seconds_sum", (("platform", "web"),))] > 0
        assert after[("chatbot_votes", (("value", "up"),))] == 1
        assert after[("chatbot_votes", (("value", "down"),))] == 0
        assert after[("chatbot_corrections", (("status", "pending"),))] == 1

        # the vote changed to 👎: the totals follow the store
        await c.http.post(
            "/console/api/vote", json={"answer_id": answer["answer_id"], "value": -1, "user": "dana"}
        )
        changed = await _samples(c)
        assert changed[("chatbot_votes", (("value", "up"),))] == 0
        assert changed[("chatbot_votes", (("value", "down"),))] == 1


async def test_failed_answers_and_the_active_adapter(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        c.model.down = True
        await c.ask("How many days of leave?")
        seed.adapters(database, "kb-v1", "kb-v2")
        samples = await _samples(c)
        assert samples[("chatbot_answers_total", (("outcome", "unavailable"), ("platform", "web")))] == 1
        assert ("chatbot_answer_seconds_count", (("platform", "web"),)) not in samples
        assert samples[("chatbot_active_adapter", (("adapter", "kb-v2"),))] == 1
        assert ("chatbot_active_adapter", (("adapter", "base"),)) not in samples


async def test_healthz_is_still_served(database: Database, tmp_path: Path) -> None:
    async with running_console(database, tmp_path) as c:
        response = await c.http.get("/healthz")
        assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_the_bot_process_serves_console_and_metrics_and_counts_slack_answers(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chatbot.bot_process.application` wires the console, /metrics and the pipeline's observer together:
    a question answered in Slack is counted, the console answers and its admin pages take the token."""
    db_url = database.url
    model = FakeModel()
    monkeypatch.setattr(
        wiring, "build_pipeline", lambda settings, *, database, knowledge: _pipeline(database, model)
    )
    monkeypatch.setattr(
        wiring, "open_knowledge", lambda settings: KnowledgeBase.open(tmp_path / "i", HashingEmbedder())
    )
    async with SlackServer() as slack:
        settings = Settings(
            database_url=db_url,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
            admin_token=TOKEN,
        )
        async with serving(await application(settings)) as url, httpx.AsyncClient(base_url=url) as http:
            body = json.dumps(event_callback(mention(slack.add_message("C1", "U1", "How much leave?"), "C1")))
            headers = signature_headers(body, content_type="application/json")
            assert (await http.post("/slack/events", content=body, headers=headers)).status_code == 200
            await slack.wait_for_replies()
            console = await http.post("/console/api/ask", json={"question": "How much leave?"})
            assert "event: answer" in console.text
            metrics = (await http.get("/metrics")).text
            assert 'chatbot_answers_total{outcome="answered",platform="slack"} 1.0' in metrics
            assert 'chatbot_answers_total{outcome="answered",platform="web"} 1.0' in metrics
            login = await http.post("/console/login", data={"token": TOKEN, "name": "ada"})
            assert login.status_code == 303
            assert (await http.get("/console/model")).status_code == 200


def _pipeline(database: Database, model: FakeModel) -> Pipeline:
    return make_deps(database, model).pipeline
