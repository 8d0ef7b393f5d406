"""`chatbot ingest`, `chatbot ask` and `chatbot eval`."""

from __future__ import annotations

import asyncio
import getpass
import json
import platform
import time
from pathlib import Path
from typing import Any

import click

from bot.errors import BotError
from bot.knowledge.evaluate import load_questions, recall
from bot.pipeline import Question
from chatbot.cmd_review import recheck_after_ingest
from chatbot.common import load_settings
from chatbot.wiring import build_pipeline, open_knowledge
from retrain.evaluate import score_answers


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def ingest(paths: tuple[Path, ...]) -> None:
    """Add or update documents (Markdown, reStructuredText, HTML, text, PDF; files or folders)."""
    settings = load_settings()
    knowledge = open_knowledge(settings, defer_embedder=True)
    report = knowledge.ingest(paths)
    click.echo(report.summary())
    recheck_after_ingest(settings, knowledge, report.changed_ids)


@click.command("ask")
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON, for scripts.")
def ask(question: str, as_json: bool) -> None:
    """Ask a question through the running model server and print the answer and its sources."""
    pipeline = build_pipeline(load_settings())
    try:
        answer = asyncio.run(pipeline.answer(Question(question, platform="cli", user_id=getpass.getuser())))
    except BotError as exc:
        raise click.ClickException(exc.user_message) from None
    if as_json:
        sources = [
            {"title": s.title, "source": s.url or s.source, "score": round(s.score, 4)}
            for s in answer.sources
        ]
        payload = {
            "answer": answer.text,
            "sources": sources,
            "adapter": answer.adapter,
            "confidence": answer.confidence,
        }
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    click.echo(answer.text)
    for i, source in enumerate(answer.sources, start=1):
        click.echo(f"  [{i}] {source.title} ({source.url or source.source})")
    confidence = "n/a" if answer.confidence is None else f"{answer.confidence:.2f}"
    click.echo(f"  answered by {answer.adapter}, confidence {confidence}, {answer.timings['total_ms']} ms")


@click.command("eval")
@click.option(
    "--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"])
)
@click.option("--limit", type=int, default=0, help="Only the first N questions (0: all).")
@click.option("--retrieval-only", is_flag=True, help="Skip generating answers.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("bench/results/eval.json"), show_default=True
)
def evaluate(split: str, limit: int, retrieval_only: bool, out: Path) -> None:
    """Score retrieval (recall@1, @5) and answers (token-F1, key-fact rate) on the sample questions."""
    settings = load_settings()
    questions = load_questions(splits=[split])
    questions = questions[:limit] if limit else questions
    kb = open_knowledge(settings)
    found = recall(kb, questions)
    report: dict[str, Any] = {
        "benchmark": "eval",
        "machine": {"python": platform.python_version(), "node": platform.node()},
        "settings": {"split": split, "questions": len(questions), "k": 5},
        "retrieval": {"recall@1": round(found.recall_at_1, 4), "recall@5": round(found.recall_at_5, 4)},
    }
    if not retrieval_only:
        pipeline = build_pipeline(settings)
        pipeline.database = None  # evaluation questions are not employees' questions

        async def answer(text: str) -> str:
            return (await pipeline.answer(Question(text, platform="cli", user_id="eval"))).text

        started = time.perf_counter()
        scores = asyncio.run(score_answers(questions, answer))
        report["answers"] = {
            **scores.summary(),
            "model": pipeline.model_name(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        report["per_question"] = scores.rows
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    click.echo(json.dumps({k: v for k, v in report.items() if k != "per_question"}, indent=2))
    click.echo(f"saved {out}")
