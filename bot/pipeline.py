"""The platform-neutral heart of the bot: a question in; an answer with sources, the adapter
that wrote it, a confidence and timings out. It never knows which platform asked.

Collaborators come in as arguments (retriever, model client, store), so tests hand it fakes
and production hands it the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.errors import AnswerUnavailable, EmptyQuestion
from bot.prompts import (
    NOT_COVERED,
    PassageLike,
    PromptStyle,
    TokenCounter,
    Turn,
    approx_tokens,
    build_messages,
)
from feedback import store
from feedback.db import Database
from model_server.client import AsyncModelClient
from model_server.errors import ModelServerError

log = logging.getLogger(__name__)


class Passage(PassageLike, Protocol):
    @property
    def source(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def score(self) -> float: ...


class Retriever(Protocol):
    def search(self, query: str, k: int = 5) -> Sequence[Passage]: ...


@dataclass(frozen=True)
class Question:
    text: str
    platform: str = "cli"
    user_id: str = "cli"
    workspace: str = ""
    channel: str = ""
    thread: str = ""


@dataclass(frozen=True)
class Source:
    title: str
    source: str
    url: str | None
    score: float
    passage_id: str


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[Source]
    adapter: str
    confidence: float | None
    covered: bool
    timings: dict[str, int] = field(default_factory=dict)
    question_id: int | None = None
    answer_id: int | None = None


AnswerObserver = Callable[[Question, Answer | None, float], None]


@dataclass
class Pipeline:
    retriever: Retriever
    client: AsyncModelClient
    # Which model answers: the active adapter's name, or the base model's served name.
    model_name: Callable[[], str]
    database: Database | None = None
    count_tokens: TokenCounter = approx_tokens
    max_model_len: int = 2048
    max_answer_tokens: int = 200
    k: int = 5
    style: PromptStyle = field(default_factory=PromptStyle)
    # Told about every question answered (the answer) or not (None), with the seconds it took:
    # metrics. An observer that raises is logged and never costs the asker their answer.
    observers: list[AnswerObserver] = field(default_factory=list)

    async def answer(self, question: Question, history: Sequence[Turn] = ()) -> Answer:
        if not question.text.strip():
            raise EmptyQuestion("empty question")
        started = time.perf_counter()
        try:
            answer = await self._answer(question, history, started)
        except AnswerUnavailable:
            self._observe(question, None, started)
            raise
        self._observe(question, answer, started)
        return answer

    def _observe(self, question: Question, answer: Answer | None, started: float) -> None:
        seconds = time.perf_counter() - started
        for observer in self.observers:
            try:
                observer(question, answer, seconds)
            except Exception:
                log.exception("an answer observer failed")

    async def _answer(self, question: Question, history: Sequence[Turn], started: float) -> Answer:
        question_id = await self._record_question(question)

        passages = await asyncio.to_thread(self.retriever.search, question.text, self.k)
        model = self.model_name()
        if not passages:
            text = NOT_COVERED.format(fallback=self.style.fallback)
            return await self._finish(
                question_id=question_id, text=text, passages=[], messages=[], model=model, started=started
            )

        retrieved = time.perf_counter()
        budget = self.max_model_len - self.max_answer_tokens
        messages, used = build_messages(
            question.text, passages, history=history, style=self.style, budget=budget, count=self.count_tokens
        )
        try:
            result = await self.client.chat(messages, model=model, max_tokens=self.max_answer_tokens)
        except ModelServerError as exc:
            log.warning("no answer for question %s: %s", question_id, exc)
            raise AnswerUnavailable(str(exc), question_id) from exc
        used_passages = [p for p in passages if any(p.id == u.id for u in used)]
        return await self._finish(
            question_id=question_id,
            text=result.text.strip(),
            passages=used_passages,
            messages=messages,
            model=model,
            confidence=result.confidence,
            started=started,
            retrieved=retrieved,
        )

    async def _record_question(self, question: Question) -> int | None:
        if self.database is None:
            return None
        database = self.database

        def write() -> int | None:
            with database.writer() as session:
                return store.record_question(
                    session,
                    platform=question.platform,
                    user_id=question.user_id,
                    text=question.text,
                    workspace=question.workspace,
                    channel=question.channel,
                    thread=question.thread,
                ).id

        return await asyncio.to_thread(write)

    async def _finish(
        self,
        *,
        question_id: int | None,
        text: str,
        passages: Sequence[Passage],
        messages: Sequence[dict[str, str]],
        model: str,
        started: float,
        retrieved: float | None = None,
        confidence: float | None = None,
    ) -> Answer:
        """Record the answer (the prompt exactly as served included) and package it."""
        done = time.perf_counter()
        retrieved = retrieved or done
        timings = {
            "retrieve_ms": int((retrieved - started) * 1000),
            "generate_ms": int((done - retrieved) * 1000),
            "total_ms": int((done - started) * 1000),
        }
        answer_id = None
        if self.database is not None and question_id is not None:
            database = self.database

            def write() -> int | None:
                with database.writer() as session:
                    return store.record_answer(
                        session,
                        question_id=question_id,
                        text=text,
                        adapter=model,
                        passage_ids=[p.id for p in passages],
                        sources=[
                            {"id": p.id, "title": p.title, "source": p.source, "url": p.url} for p in passages
                        ],
                        prompt=messages,
                        confidence=confidence,
                        latency_ms=timings["total_ms"],
                    ).id

            answer_id = await asyncio.to_thread(write)
        return Answer(
            text=text,
            sources=_sources(passages),
            adapter=model,
            confidence=confidence,
            covered=bool(messages),
            timings=timings,
            question_id=question_id,
            answer_id=answer_id,
        )


def _sources(passages: Sequence[Passage]) -> list[Source]:
    """One source per document section, best first."""
    seen: set[tuple[str, str]] = set()
    sources = []
    for p in passages:
        key = (p.source, p.title)
        if key in seen:
            continue
        seen.add(key)
        sources.append(Source(title=p.title, source=p.source, url=p.url, score=p.score, passage_id=p.id))
    return sources
