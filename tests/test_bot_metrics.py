"""The bot's /metrics over real HTTP: Prometheus text whose counters move with answers, votes and
corrections, and whose active-adapter gauge follows SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import feedback_seed as seed
from console_helpers import Console, running_console
from prometheus_client.parser import text_string_to_metric_families

from feedback.db import Database


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
