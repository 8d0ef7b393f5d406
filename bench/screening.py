"""What the correction benchmarks share (`correction_recall.py`, `learning.py`): a fresh store and a
copy of the sample knowledge base in a work folder, asking many questions at once, and screening the
sample questions for the ones the model answers without their key fact.

Not a benchmark itself: `make bench` runs it too, and it does nothing.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bot.knowledge import KnowledgeBase
from bot.knowledge.embedder import Embedder
from bot.knowledge.evaluate import SAMPLE_DOCS
from bot.pipeline import Answer, Pipeline, Question
from feedback import migrate
from feedback.db import Database
from retrain.metrics import has_key_fact

REVIEWER = "bench-reviewer"
AUTHOR = "bench-author"


def open_store(workdir: Path) -> Database:
    """A migrated SQLite store of its own in `workdir`."""
    url = f"sqlite:///{workdir / 'chatbot.db'}"
    migrate.upgrade(url)
    return Database(url)


def open_sample_knowledge(workdir: Path, index: str, embedder: Embedder) -> KnowledgeBase:
    """The sample wiki's index: a copy of `index` (never written) when it holds one, else ingested afresh."""
    target = workdir / "index"
    if index and (Path(index) / "manifest.json").exists():
        shutil.copytree(index, target)
        return KnowledgeBase.open(target, embedder)
    kb = KnowledgeBase.open(target, embedder)
    kb.ingest([SAMPLE_DOCS])
    return kb


async def ask_all(pipeline: Pipeline, texts: Sequence[str], concurrency: int, desc: str) -> list[Answer]:
    """Each text asked as AUTHOR, `concurrency` at a time (the model server batches them)."""
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(texts), desc=desc, unit="q")

    async def one(text: str) -> Answer:
        async with gate:
            answer = await pipeline.answer(Question(text, platform="cli", user_id=AUTHOR))
            bar.update()
            return answer

    try:
        return list(await asyncio.gather(*(one(t) for t in texts)))
    finally:
        bar.close()


async def find_wrong(
    pipeline: Pipeline, questions: Sequence[dict[str, Any]], *, wanted: int, concurrency: int
) -> tuple[list[dict[str, Any]], list[Answer], int]:
    """The first `wanted` questions, in id order, answered without their key fact; with their answers
    and how many questions were asked to find them."""
    ordered = sorted(questions, key=lambda q: q["id"])
    wrong: list[dict[str, Any]] = []
    answers: list[Answer] = []
    asked = 0
    while len(wrong) < wanted and asked < len(ordered):
        chunk = ordered[asked : asked + concurrency * 2]
        asked += len(chunk)
        got = await ask_all(pipeline, [q["question"] for q in chunk], concurrency, "screening")
        for q, a in zip(chunk, got, strict=True):
            if not has_key_fact(a.text, q["key_fact"]) and len(wrong) < wanted:
                wrong.append(q)
                answers.append(a)
    return wrong, answers, asked
