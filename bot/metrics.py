"""The bot's Prometheus metrics, served as text at `GET /metrics` on PORT.

    chatbot_answers_total{platform, outcome}      answers this process gave (outcome: answered,
                                                  not_covered, unavailable: the model server failed)
    chatbot_answer_seconds{platform}              how long each took, question in to answer recorded
    chatbot_votes{value}                          votes stored now, 👍 ("up") and 👎 ("down"), every
                                                  platform (read from SQL at each scrape)
    chatbot_corrections{status}                   corrections stored now, pending/approved/rejected
    chatbot_active_adapter{adapter}               1 for the adapter serving now ("base": none promoted)

Answers and latency are counted by the process that answered (sum them over bot replicas). Votes,
corrections and the active adapter are read from the shared database, so every replica reports the
same figures (take `max` over replicas, not `sum`); `increase(chatbot_votes[1h])` gives new votes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from bot.pipeline import Answer, Question
from feedback import queries
from feedback.db import Database

log = logging.getLogger(__name__)

# Answer latency buckets, in seconds: retrieval alone is ~50 ms, a CPU model takes seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class BotMetrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self, database: Database | None = None, *, base_name: str = "base") -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "chatbot_answers",
            "Answers given by this process.",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chatbot_answer_seconds",
            "Seconds from question to recorded answer.",
            ["platform"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        if database is not None:
            self.registry.register(StoreCollector(database, base_name=base_name))

    def observe_answer(self, question: Question, answer: Answer | None, seconds: float) -> None:
        """A pipeline observer: `answer` is None when no answer could be given."""
        outcome = "unavailable" if answer is None else "answered" if answer.covered else "not_covered"
        self.answers.labels(platform=question.platform, outcome=outcome).inc()
        if answer is not None:
            self.latency.labels(platform=question.platform).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, _: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.render)  # the store collector reads SQL
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


class StoreCollector(Collector):
    """Feedback totals and the active adapter, read from SQL at each scrape."""

    def __init__(self, database: Database, *, base_name: str = "base") -> None:
        self.database = database
        self.base_name = base_name

    def collect(self) -> Iterator[Metric]:
        try:
            with self.database.reader() as session:
                up, down = queries.vote_totals(session)
                corrections = queries.correction_counts(session)
                active = queries.active_adapter(session)
        except Exception:  # a scrape must not fail because the database blinked
            log.warning("metrics: could not read the store", exc_info=True)
            return
        votes = GaugeMetricFamily("chatbot_votes", "Votes stored, by value.", labels=["value"])
        votes.add_metric(["up"], up)
        votes.add_metric(["down"], down)
        yield votes
        stored = GaugeMetricFamily("chatbot_corrections", "Corrections stored, by status.", labels=["status"])
        for status in ("pending", "approved", "rejected"):
            stored.add_metric([status], corrections.get(status, 0))
        yield stored
        adapter = GaugeMetricFamily(
            "chatbot_active_adapter", "The adapter serving now (1).", labels=["adapter"]
        )
        adapter.add_metric([active.name if active else self.base_name], 1)
        yield adapter
