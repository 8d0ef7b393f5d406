"""Answer quality as `bench.models` and `bench.prompt` measure it: key-fact rate and token-F1 on
sample questions, refusals of covered, uncovered and off-topic questions, and answers that run to the
token limit. Not a benchmark itself: `make bench` runs it too, and it does nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from bot.pipeline import Pipeline, Question, Retriever
from bot.prompts import SYSTEM, PromptStyle, TokenCounter
from model_server.client import AsyncModelClient
from retrain.metrics import has_key_fact, mean, token_f1

REFUSAL = re.compile(
    r"couldn.?t find|could not find|can.?t find|cannot find|not mentioned|no information|"
    r"do(?:es)?n.?t (?:say|mention|specify)|do(?:es)? not (?:say|mention|specify)",
    re.I,
)
# on-topic questions the sample wiki does not answer, for tuning only: bench.models reports on
# bot.knowledge.evaluate.UNCOVERED, which tuning never sees (each checked against the wiki by grep)
UNCOVERED_TUNING = (
    "Is there a company car or car lease scheme?",
    "What is the dress code at the office?",
    "Do we get stock options or equity?",
    "How much is the Christmas bonus?",
    "Can I bring my dog to the Lisbon office?",
    "Am I allowed to take a side job or freelance work?",
    "Can I take an unpaid sabbatical?",
    "Is there a bonus for referring a friend who gets hired?",
    "Does the company match my charitable donations?",
    "How many paid volunteering days do we get?",
    "Is there an employee of the month award?",
    "How is overtime paid?",
    "Do I get a day off for my wedding?",
    "Do I get paid leave for jury duty?",
    "Do we get a day off on our birthday?",
    "Is there a moving day when I move house?",
    # near misses: a passage on the neighbouring topic is retrieved (insurance, parties, notice periods)
    "Does the health insurance cover laser eye surgery?",
    "Is there pet insurance through the company?",
    "How do promotions work, and who decides them?",
    "Does the company pay for childcare or run a creche?",
    "How much is the budget for the Christmas party?",
    "Can I get an advance on my salary?",
    "Does the company pay for a visa for my spouse when I relocate?",
    "When is the next company hackathon?",
    "Can I bring my children to the office during school holidays?",
    "Do we get a 13th-month salary in Portugal?",
    "Is there an employee discount on our own software?",
    "What is the notice period if I want to resign?",
    "Can I request a standing desk for the office?",
    "How much is the relocation package for moving to Toronto?",
)


def base_pipeline(
    kb: Retriever, url: str, count: TokenCounter, system: str = SYSTEM, grounding_threshold: float = 0.0
) -> Pipeline:
    """The bot's pipeline over `kb`, asking the base model at `url`; it waits as long as busy cores
    need, where the bot would tell the person after ANSWER_TIMEOUT_SECONDS."""
    return Pipeline(
        retriever=kb,
        client=AsyncModelClient(url, timeout=900),
        model_name=lambda: "base",
        count_tokens=count,
        style=PromptStyle(company="Larkspur Systems", system=system),
        answer_timeout=900,
        grounding_threshold=grounding_threshold,
    )


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


def repeats_itself(text: str, n: int = 6) -> bool:
    """Some run of `n` words occurs three times or more: the loop a weak model falls into."""
    words = text.lower().split()
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return any(grams.count(g) >= 3 for g in set(grams))


async def ask(pipeline: Pipeline, texts: Sequence[str], concurrency: int, desc: str) -> list[dict[str, Any]]:
    """Each question through the bot's pipeline: its answer, seconds, and the error if it failed."""
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(texts), desc=desc, unit="q")

    async def one(text: str) -> dict[str, Any]:
        async with gate:
            started = time.perf_counter()
            try:
                answer = await pipeline.answer(Question(text, platform="cli", user_id="bench"))
                row = {"answer": answer.text, "covered": answer.covered, "error": None}
            except Exception as exc:  # one failure is counted, never lost
                row = {"answer": "", "covered": True, "error": f"{type(exc).__name__}: {exc}"}
            row["seconds"] = round(time.perf_counter() - started, 2)
            bar.update()
            return row

    try:
        return list(await asyncio.gather(*(one(t) for t in texts)))
    finally:
        bar.close()


async def measure(
    pipeline: Pipeline,
    questions: Sequence[dict[str, Any]],
    *,
    uncovered: Sequence[str],
    off_topic: Sequence[str] = (),
    concurrency: int = 4,
) -> dict[str, Any]:
    """Key facts and refusals over `questions` (covered), `uncovered` and `off_topic`."""
    rows = await ask(pipeline, [q["question"] for q in questions], concurrency, "covered")
    for question, row in zip(questions, rows, strict=True):
        row.update(
            id=question["id"],
            key_fact=has_key_fact(row["answer"], question["key_fact"]),
            token_f1=round(token_f1(row["answer"], question["answer"]), 4),
            refused=is_refusal(row["answer"]),
            at_limit=pipeline.count_tokens(row["answer"]) >= pipeline.max_answer_tokens - 2,
            repeats=repeats_itself(row["answer"]),
        )
    unc = await ask(pipeline, list(uncovered), concurrency, "uncovered")
    off = await ask(pipeline, list(off_topic), concurrency, "off-topic") if off_topic else []
    for text, row in zip([*uncovered, *off_topic], [*unc, *off], strict=True):
        row.update(question=text, refused=is_refusal(row["answer"]) or not row["covered"])
    return {
        "covered": {
            "questions": len(rows),
            "key_fact_rate": round(mean([float(r["key_fact"]) for r in rows]), 4),
            "token_f1": round(mean([r["token_f1"] for r in rows]), 4),
            "refused": round(mean([float(r["refused"]) for r in rows]), 4),
            "at_token_limit": sum(r["at_limit"] for r in rows),
            "repeating": sum(r["repeats"] for r in rows),
            "failures": sum(1 for r in rows if r["error"]),
        },
        "uncovered": {"questions": len(unc), "refused": round(mean([float(r["refused"]) for r in unc]), 4)},
        "off_topic": {"questions": len(off), "refused": round(mean([float(r["refused"]) for r in off]), 4)},
        "rows": {"covered": rows, "uncovered": unc, "off_topic": off},
    }
