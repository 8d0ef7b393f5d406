"""Correction-recall benchmark: does an approved correction fix the next answer, with no retrain?

    .venv/bin/python -m bench.correction_recall                 # 20 corrections, ~10 minutes on 2 cores
    .venv/bin/python -m bench.correction_recall --corrections 30

With the real pieces, in a temporary data directory: the bundled SmolLM2-135M-Instruct behind vLLM
where .venv-vllm exists, else the embedded engine (as `chatbot model-server` chooses; `--backend`),
the sample wiki indexed with MiniLM (a copy of data/index, or a fresh ingest), a migrated SQLite
store, the answer pipeline, and the review desk that `chatbot review` and the Slack buttons use.

1. Ask the sample questions (by id, every split) until `--corrections` of them are answered wrongly
   (the key fact is missing, `retrain.metrics.has_key_fact`).
2. Ask their reworded versions: the key-fact rate *before*.
3. For each, submit a correction (the sample's reference answer) and have a reviewer approve it: the
   review desk indexes it in the knowledge base at once.
4. Ask the reworded versions again: the key-fact rate *after*, and how often the reviewed correction
   was among the cited sources (retrieval) - to tell a retrieval miss from the model ignoring its
   context. The original wording is asked again too.
5. The ceiling of the model's reading: each reworded question asked with its approved correction as
   the ONLY passage in the prompt (perfect retrieval, no other page to distract it). Where this rate
   is low, no retrieval or ranking can lift the model's answers: only the reviewed answer itself can.

The pipeline is the bot's: a question close enough to an approved correction's question
(REVIEWED_ANSWER_SIMILARITY, `--reviewed-similarity`) gets the reviewed answer itself, without the
model; the others are answered by the model with the correction first in its context.
`--reviewed-similarity 0` measures the model with the correction in its context alone.

Prints the summary and writes bench/results/correction_recall.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.screening import AUTHOR, REVIEWER, ask_all, find_wrong, open_sample_knowledge, open_store
from bot.knowledge import load_embedder
from bot.knowledge.evaluate import load_questions
from bot.pipeline import Answer, Pipeline
from bot.prompts import build_messages
from bot.review.desk import (
    ReviewDesk,
    ReviewPolicy,
    correction_document,
    correction_source,
    correction_title,
)
from bot.review.reviewed_answers import ReviewedAnswers
from chatbot.settings import Settings
from chatbot.wiring import token_counter
from model_server.client import AsyncModelClient
from model_server.prepare import prepare_base_model
from retrain.metrics import has_key_fact
from tests.support.model_servers import running_server, vllm_python

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "correction_recall.json"


@dataclass
class Config:
    corrections: int = 20  # wrongly answered questions to correct
    concurrency: int = 8  # questions in flight at once (the server batches them)
    backend: str = "vllm"  # or "transformers": the embedded engine
    index: str = str(REPO / "data" / "index")  # copied, never written; "" ingests the sample wiki afresh
    data_dir: str = str(REPO / "data")  # where the base model is prepared
    # REVIEWED_ANSWER_SIMILARITY: its default unless told; 0 leaves every answer to the model
    reviewed_similarity: float = Settings.model_fields["reviewed_answer_similarity"].default


def rate(answers: list[Answer], questions: list[dict[str, Any]]) -> float:
    hits = [has_key_fact(a.text, q["key_fact"]) for a, q in zip(answers, questions, strict=True)]
    return round(sum(hits) / len(hits), 4) if hits else 0.0


def served(answers: list[Answer], corrections: list[int]) -> float:
    """How often the answer was the correction itself, as a reviewed answer (no model)."""
    hits = [a.reviewed_correction_id == c for a, c in zip(answers, corrections, strict=True)]
    return round(sum(hits) / len(hits), 4) if hits else 0.0


def cites(answer: Answer, correction_id: int) -> bool:
    return any(s.title == correction_title(correction_id) for s in answer.sources)


@dataclass(frozen=True)
class _Passage:
    id: str
    title: str
    text: str


async def correction_alone(
    client: AsyncModelClient,
    pipeline: Pipeline,
    wrong: list[dict[str, Any]],
    corrected: list[int],
    concurrency: int,
) -> list[bool]:
    """Whether the model states the key fact when the approved correction is its only passage."""
    gate = asyncio.Semaphore(concurrency)

    async def one(q: dict[str, Any], correction_id: int) -> bool:
        passage = _Passage(
            correction_source(correction_id),
            correction_title(correction_id),
            correction_document(q["question"], q["answer"]),
        )
        messages, _ = build_messages(
            q["reworded"],
            [passage],
            style=pipeline.style,
            budget=pipeline.max_model_len - pipeline.max_answer_tokens,
            count=pipeline.count_tokens,
        )
        async with gate:
            result = await client.chat(
                messages, model="base", max_tokens=pipeline.max_answer_tokens, logprobs=False
            )
        return has_key_fact(result.text, q["key_fact"])

    return list(await asyncio.gather(*(one(q, c) for q, c in zip(wrong, corrected, strict=True))))


async def run(cfg: Config, workdir: Path) -> dict[str, Any]:
    machine = describe()  # the load average before this run adds its own
    model_dir = prepare_base_model(Path(cfg.data_dir), progress=True)
    database = open_store(workdir)
    embedder = load_embedder(None)
    kb = open_sample_knowledge(workdir, cfg.index, embedder)
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=[REVIEWER]), knowledge=kb)

    started = time.perf_counter()
    with running_server(cfg.backend, model_dir, workdir / "server.log") as server:
        client = AsyncModelClient(server, timeout=300)
        pipeline = Pipeline(
            retriever=kb,
            client=client,
            model_name=lambda: "base",
            database=database,
            count_tokens=token_counter(model_dir),
            reviewed=ReviewedAnswers(database, embedder, threshold=cfg.reviewed_similarity),
            answer_timeout=600,  # a bench waits for busy cores; the bot tells people sooner
        )
        wrong, first_answers, screened = await find_wrong(
            pipeline, load_questions(), wanted=cfg.corrections, concurrency=cfg.concurrency
        )
        reworded = [q["reworded"] for q in wrong]
        before = await ask_all(pipeline, reworded, cfg.concurrency, "reworded, before")

        corrected = []
        for q, answer in zip(wrong, first_answers, strict=True):
            case = desk.submit(answer_id=answer.answer_id or 0, author=AUTHOR, text=q["answer"])
            outcome = desk.decide(case.correction.id or 0, reviewer=REVIEWER, decision="approve")
            assert outcome.indexed, "the approved correction was not indexed"
            corrected.append(case.correction.id or 0)

        after = await ask_all(pipeline, reworded, cfg.concurrency, "reworded, after")
        original_after = await ask_all(
            pipeline, [q["question"] for q in wrong], cfg.concurrency, "original, after"
        )
        alone = await correction_alone(client, pipeline, wrong, corrected, cfg.concurrency)
        await client.aclose()
    database.dispose()

    rows = [
        {
            "id": q["id"],
            "question": q["question"],
            "reworded": q["reworded"],
            "key_fact": q["key_fact"],
            "first_answer": a0.text,
            "before": b.text,
            "after": a.text,
            "after_has_key_fact": has_key_fact(a.text, q["key_fact"]),
            "after_cites_correction": cites(a, cid),
            "after_is_reviewed_answer": a.reviewed_correction_id == cid,
            "after_sources": [s.title for s in a.sources],
            "correction_alone_has_key_fact": hit,
        }
        for q, a0, b, a, cid, hit in zip(wrong, first_answers, before, after, corrected, alone, strict=True)
    ]
    return {
        "benchmark": "correction_recall",
        "machine": machine,
        "settings": {
            "corrections": cfg.corrections,
            "model": f"{model_dir.name}, {cfg.backend}, greedy",
            "embedder": embedder.model_id,
            "retrain": False,
            "reviewed_answer_similarity": cfg.reviewed_similarity,
        },
        "screened_questions": screened,
        "corrected_questions": len(wrong),
        "key_fact_rate": {
            "reworded_before": rate(before, wrong),
            "reworded_after": rate(after, wrong),
            "original_after": rate(original_after, wrong),
        },
        "correction_cited_rate": {
            "reworded_after": round(
                sum(cites(a, c) for a, c in zip(after, corrected, strict=True)) / len(wrong), 4
            )
            if wrong
            else 0.0,
            "original_after": round(
                sum(cites(a, c) for a, c in zip(original_after, corrected, strict=True)) / len(wrong), 4
            )
            if wrong
            else 0.0,
        },
        "correction_alone_key_fact_rate": round(sum(alone) / len(alone), 4) if alone else 0.0,
        "reviewed_answer_rate": {
            "reworded_after": served(after, corrected),
            "original_after": served(original_after, corrected),
        },
        "target": {"reworded_after": 0.8},
        "seconds": round(time.perf_counter() - started, 1),
        "per_question": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corrections", type=int, default=Config.corrections)
    parser.add_argument("--concurrency", type=int, default=Config.concurrency)
    parser.add_argument(
        "--backend",
        choices=["vllm", "transformers"],
        default="vllm" if vllm_python() else "transformers",
        help="the model server (default: vLLM where .venv-vllm exists)",
    )
    parser.add_argument("--index", default=Config.index, help="index to copy ('' to ingest the sample wiki)")
    parser.add_argument(
        "--reviewed-similarity",
        type=float,
        default=Config.reviewed_similarity,
        help="REVIEWED_ANSWER_SIMILARITY (0: no reviewed answers)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cfg = Config(
        corrections=args.corrections,
        concurrency=args.concurrency,
        backend=args.backend,
        index=args.index,
        reviewed_similarity=args.reviewed_similarity,
    )
    with tempfile.TemporaryDirectory(prefix="correction-recall-") as tmp:
        report = asyncio.run(run(cfg, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "per_question"}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
