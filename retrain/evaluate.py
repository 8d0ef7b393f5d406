"""Score generated answers against reference answers: token-F1 and key-fact rate.

The answering function is handed in (the `chatbot` wiring builds it from the bot's pipeline), so
this module needs neither the bot nor a particular model server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from retrain.metrics import has_key_fact, mean, token_f1

AnswerFn = Callable[[str], Awaitable[str]]


@dataclass
class AnswerScores:
    questions: int = 0
    token_f1: float = 0.0
    key_fact_rate: float = 0.0
    failures: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        return {
            "questions": self.questions,
            "token_f1": round(self.token_f1, 4),
            "key_fact_rate": round(self.key_fact_rate, 4),
            "failures": self.failures,
        }


async def score_answers(
    questions: Sequence[dict[str, Any]],
    answer: AnswerFn,
    *,
    field_name: str = "question",
    concurrency: int = 8,
) -> AnswerScores:
    """Ask each question (concurrently, so a batching server is used well) and score the answers.
    A question that fails counts as a wrong answer and is reported, never skipped silently."""
    gate = asyncio.Semaphore(concurrency)

    async def one(question: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            try:
                text, error = await answer(question[field_name]), None
            except Exception as exc:  # one failed question must not lose the others' scores
                text, error = "", f"{type(exc).__name__}: {exc}"
        return {
            "id": question["id"],
            "answer": text,
            "token_f1": token_f1(text, question["answer"]),
            "key_fact": has_key_fact(text, question["key_fact"]),
            "error": error,
        }

    rows = await asyncio.gather(*(one(q) for q in questions))
    return AnswerScores(
        questions=len(rows),
        token_f1=mean([r["token_f1"] for r in rows]),
        key_fact_rate=mean([float(r["key_fact"]) for r in rows]),
        failures=sum(1 for r in rows if r["error"]),
        rows=list(rows),
    )
