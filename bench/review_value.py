"""Is the review sampler worth reviewers' time? The smallest catalog model answers, the largest drafts.

    .venv/bin/python -m bench.review_value [--budget 20] [--seed 7]

The student (`--student`, the smallest catalog model) answers every train and validation question of
the sample set through the bot's pipeline, recorded in a fresh store (confidence, relevance). The
sampler (`bot.review.sampler`, a daily budget of `--budget`) queues the least certain; a random sample
of the same size is drawn (seeded) from the same answers it chose among. For both: the share that are
really wrong (the sample answer's key fact missing). Then the teacher (`--teacher`, the largest catalog
model, on its own model server) drafts each queued case from the prompt the student was served: the
share of the wrong ones whose draft states the key fact. With `--retrain`, a reviewer approves the
drafts that state their key fact and the student is retrained once on that feedback alone, as
`chatbot retrain` would: the test split's key-fact rate before and after (the candidate is asked by
name when the gate rejects it). Target: the sampler finds at least twice as many wrong answers as
random. Saved to bench/results/review_value.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlmodel import select

from bench.machine import describe
from bench.quality import base_pipeline
from bench.screening import REVIEWER, ask_all, open_sample_knowledge, open_store
from bot.knowledge import KnowledgeBase, load_embedder
from bot.knowledge.evaluate import load_questions
from bot.pipeline import Answer, Pipeline
from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.review.sampler import Sampler
from chatbot.retraining import Retrainer
from chatbot.settings import Settings
from chatbot.wiring import active_model, token_counter
from feedback import store
from feedback.db import Database
from feedback.models import Correction
from model_server import catalog
from model_server.client import AsyncModelClient, ModelClient
from model_server.prepare import prepare_base_model
from retrain import promote
from retrain.drafts import Teacher, draft_pending
from retrain.metrics import has_key_fact
from tests.support.model_servers import running_server, vllm_python

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.0


def wrong_rate(ids: list[int], wrong: dict[int, bool]) -> float:
    return round(sum(wrong[i] for i in ids) / len(ids), 4) if ids else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    entries = catalog.load_catalog().values()
    smallest = min(entries, key=lambda e: e.parameters).name
    largest = max(entries, key=lambda e: e.parameters).name
    parser.add_argument("--student", default=smallest)
    parser.add_argument("--teacher", default=largest)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--retrain", action="store_true", help="retrain on the approved drafts and measure")
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--index", default=str(REPO / "data" / "index"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "review_value.json")
    args = parser.parse_args()

    student_dir = prepare_base_model(Path(args.data_dir), args.student)
    teacher_dir = prepare_base_model(Path(args.data_dir), args.teacher)
    questions = load_questions(splits=["train", "validation"])
    backend = "vllm" if vllm_python() else "transformers"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with (
            running_server(backend, student_dir, workdir / "student.log", max_loras=3) as student_url,
            running_server(backend, teacher_dir, workdir / "teacher.log") as teacher_url,
        ):
            report = measure(args, workdir, questions, student_url, teacher_url, student_dir)
    report = {
        "benchmark": "review_value",
        "machine": describe(),
        "settings": {
            "student": args.student,
            "teacher": args.teacher,
            "backend": backend,
            "questions": len(questions),
            "splits": ["train", "validation"],
            "budget": args.budget,
            "seed": args.seed,
            "target_ratio": TARGET_RATIO,
            "retrain": args.retrain,
            "retrain_data": "the approved drafts alone (no sample seed examples)",
        },
        **report,
    }
    shown = {k: v for k, v in report.items() if k not in ("machine", "cases")}
    print(json.dumps(shown, indent=2))
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {args.out}")


def measure(
    args: argparse.Namespace,
    workdir: Path,
    questions: list[dict[str, Any]],
    student_url: str,
    teacher_url: str,
    student_dir: Path,
) -> dict[str, Any]:
    database = open_store(workdir)
    kb = open_sample_knowledge(workdir, args.index, load_embedder())
    pipeline = base_pipeline(kb, student_url, token_counter(student_dir))
    pipeline.database = database
    chosen: dict[str, str | None] = {"model": None}
    from_sql = active_model(database, "base", ttl=0.0)
    pipeline.model_name = lambda: chosen["model"] or from_sql()
    texts = [q["question"] for q in questions]

    async def answer_all() -> list[Answer]:
        try:
            return await ask_all(pipeline, texts, 4, "student answers")
        finally:
            await pipeline.client.aclose()

    answers = asyncio.run(answer_all())
    key_facts = {a.answer_id or 0: q["key_fact"] for q, a in zip(questions, answers, strict=True)}
    wrong = {
        a.answer_id or 0: not has_key_fact(a.text, q["key_fact"])
        for q, a in zip(questions, answers, strict=True)
    }
    pool = sorted(
        a.answer_id or 0 for a in answers if a.confidence is not None
    )  # what the sampler picks from

    queued_cases = Sampler(database, daily_budget=args.budget).run()
    with database.reader() as session:
        cases = {c.id: c for c in session.exec(select(Correction).where(Correction.origin == "sampled"))}
    queued = [cases[i].answer_id for i in queued_cases]
    sampled_at_random = random.Random(args.seed).sample(pool, len(queued))

    teacher = Teacher(ModelClient(teacher_url, timeout=900, retries=0), "base")
    draft_pending(database, teacher, max_cases=len(queued), seconds=3600)
    with database.reader() as session:
        drafted = {
            c.answer_id: c for c in session.exec(select(Correction).where(Correction.origin == "sampled"))
        }
    wrong_queued = [i for i in queued if wrong[i]]
    draft_right = [
        i for i in wrong_queued if drafted[i].draft and has_key_fact(drafted[i].draft or "", key_facts[i])
    ]
    sampler_rate, random_rate = wrong_rate(queued, wrong), wrong_rate(sampled_at_random, wrong)
    retrained = None
    if args.retrain:
        right_drafts = [drafted[i].id or 0 for i in draft_right]
        retrained = retrain_on(args, workdir, database, kb, pipeline, student_url, right_drafts, chosen)
    return {
        "student_answers": {"answered": len(answers), "wrong_rate": wrong_rate(sorted(wrong), wrong)},
        "sampler": {"queued": len(queued), "wrong_rate": sampler_rate},
        "random": {"sampled": len(sampled_at_random), "wrong_rate": random_rate},
        "ratio": round(sampler_rate / random_rate, 2) if random_rate else None,
        "drafts": {
            "wrong_queued": len(wrong_queued),
            "drafted": sum(1 for i in wrong_queued if drafted[i].draft),
            "draft_right": len(draft_right),
            "draft_right_rate": round(len(draft_right) / len(wrong_queued), 4) if wrong_queued else None,
        },
        "retrain_on_drafts": retrained,
        "cases": [
            {
                "answer_id": i,
                "wrong": wrong[i],
                "uncertainty": drafted[i].uncertainty,
                "reasons": drafted[i].reasons,
                "draft_right": i in draft_right,
            }
            for i in queued
        ],
    }


def retrain_on(
    args: argparse.Namespace,
    workdir: Path,
    database: Database,
    kb: KnowledgeBase,
    pipeline: Pipeline,
    url: str,
    case_ids: list[int],
    chosen: dict[str, str | None],
) -> dict[str, Any]:
    """A reviewer keeps each right draft (recall off: only training can teach it); one retrain on
    that feedback; the test split before and after."""
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=[REVIEWER], recall=False), knowledge=kb)
    for case_id in case_ids:
        assert desk.decide(case_id, reviewer=REVIEWER, decision="approve", choice="draft").decided
    test = load_questions(splits=["test"])
    texts = [q["question"] for q in test]

    async def ask_test(label: str) -> list[Answer]:
        pipeline.client = AsyncModelClient(url, timeout=900)
        try:
            return await ask_all(pipeline, texts, 4, label)
        finally:
            await pipeline.client.aclose()

    before = asyncio.run(ask_test("test, before"))
    # Without the sample set's seed examples, which every retrain of a sample install carries: the
    # drafts alone.
    # No canary either: the candidate is measured on the test split directly.
    settings = Settings(base_model=args.student, sample_knowledge=False, canary_share=0)
    (workdir / "models").symlink_to(prepare_base_model(Path(args.data_dir), args.student).parent)
    retrainer = Retrainer(
        settings.model_copy(update={"data_dir": workdir, "model_server_url": url}), database, knowledge=kb
    )
    with database.writer() as session:
        run = store.queue_run(session, trigger="cli", requested_by="bench")
    started = time.perf_counter()
    outcome = retrainer(run_id=run.id or 0)
    seconds = round(time.perf_counter() - started, 1)
    if outcome.status in ("rejected", "canary") and outcome.adapter:
        with ModelClient(url, timeout=600) as client:
            promote.make_servable(
                client, outcome.adapter, str(retrainer.config.adapters_dir / outcome.adapter)
            )
        chosen["model"] = outcome.adapter
    after = asyncio.run(ask_test("test, after"))

    def rate(answers: list[Answer]) -> float:
        hits = [has_key_fact(a.text, q["key_fact"]) for q, a in zip(test, answers, strict=True)]
        return round(sum(hits) / len(hits), 4)

    return {
        "approved_drafts": len(case_ids),
        "status": outcome.status,
        "adapter": outcome.adapter,
        "seconds": seconds,
        "test_key_fact_before": rate(before),
        "test_key_fact_after": rate(after),
        "answered_by": sorted({a.adapter for a in after}),
    }


if __name__ == "__main__":
    main()
