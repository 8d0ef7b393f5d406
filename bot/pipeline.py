"""The platform-neutral heart of the bot: a question in; an answer with sources, the adapter
that wrote it, a confidence and timings out. It never knows which platform asked.

Collaborators come in as arguments (retriever, model client, store), so tests hand it fakes
and production hands it the real ones.

`answer` gives the whole answer at once (Slack, Teams, the command line); `answer_stream` yields
the text as the model writes it and then the same recorded `Answer` (the browser console). Both
retrieve, prompt and record alike: the answer's confidence, which orders the review queue, comes
from the log-probabilities of the whole completion either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from bot import grounding, records
from bot.errors import AnswerDelayed, AnswerUnavailable, BotError, EmptyQuestion
from bot.prompts import (
    NOT_COVERED,
    PassageLike,
    PromptStyle,
    TokenCounter,
    Turn,
    approx_tokens,
    build_messages,
)
from bot.review.reviewed_answers import REVIEWED_ADAPTER, ReviewedAnswers, ReviewedMatch
from feedback import store
from feedback.db import Database
from model_server.client import AsyncModelClient, ChatResult
from model_server.errors import ModelServerError

log = logging.getLogger(__name__)
R = TypeVar("R")  # a platform's reply


class Passage(PassageLike, Protocol):
    @property
    def source(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def score(self) -> float: ...
    @property
    def similarity(self) -> float: ...


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
    reviewed_correction_id: int | None = None  # a reviewed answer: this approved correction, verbatim


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text, as the model writes it; the pieces add up to `Answer.text`."""

    text: str


@dataclass(frozen=True)
class _Prompt:
    """A question recorded and its passages retrieved: what the model is asked, or the refusal."""

    question_id: int | None
    model: str
    passages: Sequence[Passage]  # those that fit in the prompt
    messages: list[dict[str, str]]  # empty when nothing was retrieved: no model call
    retrieved: float
    reviewed: ReviewedMatch | None = None  # an approved correction answers it: no model call
    ungrounded: bool = False  # the model said its passages do not answer it: the refusal instead


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
    # Approved corrections: answered verbatim when the question matches one closely enough, else
    # the closest one first in the context (withdrawn ones dropped). None leaves retrieval as is.
    reviewed: ReviewedAnswers | None = None
    # The longest the asker waits on the model: for the whole answer, or, streamed, for each next
    # piece of it. Past that they are told the answer is late, and the question stays recorded.
    answer_timeout: float = 30.0
    # Refuse when bot.grounding.score (yes-share plus closest cosine) is below this; 0 asks no check.
    grounding_threshold: float = 0.0
    # While a canary is open, which model answers this question given the live one (`bot.routing`).
    route: Callable[[Question, str], str] | None = None

    async def answer(self, question: Question, history: Sequence[Turn] = ()) -> Answer:
        if not question.text.strip():
            raise EmptyQuestion("empty question")
        started = time.perf_counter()
        try:
            prompt = await self._prompt(question, history)
            result = None
            if prompt.messages:
                with _unavailable(prompt, self.answer_timeout):
                    async with asyncio.timeout(self.answer_timeout):
                        prompt = await self._check_grounding(prompt)
                        if not prompt.ungrounded:
                            result = await self.client.chat(
                                prompt.messages, model=prompt.model, max_tokens=self.max_answer_tokens
                            )
            answer = await self._finish(prompt, result, started)
        except AnswerUnavailable:
            self._observe(question, None, started)
            raise
        self._observe(question, answer, started)
        return answer

    async def answer_stream(
        self, question: Question, history: Sequence[Turn] = ()
    ) -> AsyncIterator[Delta | Answer]:
        """Yield the answer's text as the model writes it, then the recorded `Answer`: the same
        answer, rows and errors as `answer`. Leading and trailing white space is held back, so the
        deltas add up to exactly `Answer.text`. The answer is recorded at the end: a caller that
        stops reading early leaves the question recorded without one."""
        if not question.text.strip():
            raise EmptyQuestion("empty question")
        started = time.perf_counter()
        try:
            prompt = await self._prompt(question, history)
            result = None
            if prompt.messages:
                with _unavailable(prompt, self.answer_timeout):
                    async with asyncio.timeout(self.answer_timeout):
                        prompt = await self._check_grounding(prompt)
            if prompt.messages and not prompt.ungrounded:
                trim = _Trim()
                stream = self.client.chat_stream(
                    prompt.messages, model=prompt.model, max_tokens=self.max_answer_tokens
                )
                with _unavailable(prompt, self.answer_timeout):
                    while (item := await _next(stream, self.answer_timeout)) is not None:
                        if isinstance(item, ChatResult):
                            result = item
                        elif text := trim.feed(item):
                            yield Delta(text)
            answer = await self._finish(prompt, result, started)
        except AnswerUnavailable:
            self._observe(question, None, started)
            raise
        if not prompt.messages or prompt.ungrounded:
            yield Delta(answer.text)  # the refusal or the reviewed answer, in one piece
        self._observe(question, answer, started)
        yield answer

    async def _check_grounding(self, prompt: _Prompt) -> _Prompt:
        """The prompt marked ungrounded where the model says its passages do not answer it."""
        if self.grounding_threshold <= 0:
            return prompt
        share = await self.grounding_share(prompt.messages, prompt.model)
        score = grounding.score(share, [p.similarity for p in prompt.passages])
        log.debug("question %s: grounding yes-share %s, score %s", prompt.question_id, share, score)
        return replace(prompt, ungrounded=score is not None and score < self.grounding_threshold)

    async def grounding_share(self, messages: list[dict[str, str]], model: str) -> float | None:
        """The model's yes-share of bot.grounding.CHECK after `messages` (None: neither word)."""
        check = await self.client.chat(
            grounding.check_messages(messages), model=model, max_tokens=1, top_logprobs=10
        )
        return grounding.yes_share(check.first_alternatives)

    def _observe(self, question: Question, answer: Answer | None, started: float) -> None:
        seconds = time.perf_counter() - started
        for observer in self.observers:
            try:
                observer(question, answer, seconds)
            except Exception:
                log.exception("an answer observer failed")

    async def _prompt(self, question: Question, history: Sequence[Turn]) -> _Prompt:
        """Record the question, retrieve its passages and fit them into the model's prompt."""
        question_id = await self._record_question(question)
        advice = await asyncio.to_thread(self.reviewed.consult, question.text) if self.reviewed else None
        if advice is not None and advice.match is not None:
            return _Prompt(question_id, REVIEWED_ADAPTER, [], [], time.perf_counter(), advice.match)
        passages: Sequence[Passage] = await asyncio.to_thread(self.retriever.search, question.text, self.k)
        if advice is not None:
            passages = advice.arrange(passages)
        model = self.model_name()
        if self.route is not None:
            model = self.route(question, model)
        retrieved = time.perf_counter()
        if not passages:
            return _Prompt(question_id, model, [], [], retrieved)
        budget = self.max_model_len - self.max_answer_tokens
        messages, used = build_messages(
            question.text, passages, history=history, style=self.style, budget=budget, count=self.count_tokens
        )
        used_passages = [p for p in passages if any(p.id == u.id for u in used)]
        return _Prompt(question_id, model, used_passages, messages, retrieved)

    async def _record_question(self, question: Question) -> int | None:
        if self.database is None:
            return None
        return await records.write(
            self.database,
            lambda session: (
                store.record_question(
                    session,
                    platform=question.platform,
                    user_id=question.user_id,
                    text=question.text,
                    workspace=question.workspace,
                    channel=question.channel,
                    thread=question.thread,
                ).id
            ),
        )

    async def _finish(self, prompt: _Prompt, result: ChatResult | None, started: float) -> Answer:
        """Record the answer (the prompt exactly as served included) and package it. Without a
        model's result the answer is the reviewed one, or the refusal (nothing retrieved)."""
        question_id, model, messages = prompt.question_id, prompt.model, prompt.messages
        reviewed = prompt.reviewed
        passages = prompt.passages if result is not None else []
        text = result.text.strip() if result is not None else NOT_COVERED.format(fallback=self.style.fallback)
        confidence = result.confidence if result is not None else None
        cited: list[dict[str, Any]] = [
            {"id": p.id, "title": p.title, "source": p.source, "url": p.url} for p in passages
        ]
        cited_ids = [p.id for p in passages]
        sources = _sources(passages)
        if reviewed is not None:
            text, confidence, cited = reviewed.text(), 1.0, reviewed.sources()
            cited_ids = reviewed.page_ids()
            sources = [Source(s["title"], s["source"], s["url"], reviewed.similarity, s["id"]) for s in cited]
        done = time.perf_counter()
        asked = result is not None or reviewed is not None or prompt.ungrounded
        retrieved = prompt.retrieved if asked else done
        timings = {
            "retrieve_ms": int((retrieved - started) * 1000),
            "generate_ms": int((done - retrieved) * 1000),
            "total_ms": int((done - started) * 1000),
        }
        answer_id = None
        if self.database is not None and question_id is not None:
            answer_id = await records.write(
                self.database,
                lambda session: (
                    store.record_answer(
                        session,
                        question_id=question_id,
                        text=text,
                        adapter=model,
                        passage_ids=cited_ids,
                        sources=cited,
                        prompt=messages,
                        confidence=confidence,
                        latency_ms=timings["total_ms"],
                        reviewed_correction_id=reviewed.correction_id if reviewed else None,
                        relevance=max((p.similarity for p in passages), default=None),
                    ).id
                ),
            )
        return Answer(
            text=text,
            sources=sources,
            adapter=model,
            confidence=confidence,
            covered=(bool(messages) and not prompt.ungrounded) or reviewed is not None,
            timings=timings,
            question_id=question_id,
            answer_id=answer_id,
            reviewed_correction_id=reviewed.correction_id if reviewed else None,
        )


async def ask(
    pipeline: Pipeline,
    question: Question,
    history: Sequence[Turn] = (),
    *,
    reply: Callable[[Answer], R],
    notice: Callable[[str], R],
) -> tuple[Answer | None, R]:
    """The answer and the platform's reply for it, or a kind notice when there is no answer to give
    (what went wrong is logged, never shown)."""
    where = f"{question.platform} {question.channel}/{question.thread}"
    try:
        answer = await pipeline.answer(question, history)
    except BotError as exc:
        log.warning("no answer in %s: %s", where, exc)
        return None, notice(exc.user_message)
    except Exception:
        log.exception("answering in %s failed", where)
        return None, notice(BotError.user_message)
    return answer, reply(answer)


async def ask_streamed(
    pipeline: Pipeline,
    question: Question,
    history: Sequence[Turn] = (),
    *,
    on_text: Callable[[str], Awaitable[None]],
) -> tuple[Answer | None, str]:
    """The answer, its text handed to `on_text` piece by piece as the model writes it; or None and
    the kind notice for the asker when there is no answer to give (what went wrong is logged)."""
    where = f"{question.platform} {question.channel}/{question.thread}"
    try:
        async for item in pipeline.answer_stream(question, history):
            if isinstance(item, Delta):
                await on_text(item.text)
            else:
                return item, ""
    except BotError as exc:
        log.warning("no answer in %s: %s", where, exc)
        return None, exc.user_message
    except Exception:
        log.exception("answering in %s failed", where)
    return None, BotError.user_message


async def _next(stream: AsyncIterator[str | ChatResult], timeout: float) -> str | ChatResult | None:
    """The stream's next item, None at its end. Only this wait is timed, never the caller's work
    between items, so a slow reader of the answer is not mistaken for a slow model."""
    try:
        async with asyncio.timeout(timeout):
            return await anext(stream)
    except StopAsyncIteration:
        return None


@contextlib.contextmanager
def _unavailable(prompt: _Prompt, timeout: float) -> Iterator[None]:
    """A model server that is down, failing or too slow: AnswerUnavailable (AnswerDelayed when it
    took longer than `timeout`), the question already recorded."""
    try:
        yield
    except ModelServerError as exc:
        log.warning("no answer for question %s: %s", prompt.question_id, exc)
        raise AnswerUnavailable(str(exc), prompt.question_id) from exc
    except TimeoutError as exc:
        log.warning("no answer for question %s: the model took longer than %gs", prompt.question_id, timeout)
        raise AnswerDelayed(f"no answer within {timeout:g}s", prompt.question_id) from exc


class _Trim:
    """Streams text as `str.strip()` would leave it: leading space dropped, trailing space held
    back until more text follows it."""

    def __init__(self) -> None:
        self._started = False
        self._pending = ""

    def feed(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        text = self._pending + text
        kept = text.rstrip()
        self._pending = text[len(kept) :]
        return kept


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
