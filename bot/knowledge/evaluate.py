"""Retrieval quality on the sample wiki: recall@k, and the relevance floor's calibration.

The floor (`Embedder.min_similarity`) is a cosine similarity that a question's best passage must
reach for anything to count as relevant (see `bot.knowledge.index`). It is calibrated from two
distributions, measured on the train and validation questions only (the test split stays unseen):

* in-domain: for each question, in both its phrasings, the best similarity of any passage;
* off-topic: the same for each question in `OFF_TOPIC` (nothing a company wiki would cover).

The floor is the midpoint between the 1st percentile of the first and the maximum of the second,
rounded down to 0.01. On the sample wiki with all-MiniLM-L6-v2 that keeps 99% of answerable
questions and rejects every off-topic one. Run `python -m bot.knowledge.evaluate` to redo it.

Questions the wiki deliberately leaves out (`UNCOVERED`: pensions, bonuses...) are on-topic, so
they do find HR passages above the floor; saying "I don't know" for those is the answer model's job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.knowledge.index import PASSAGE_FLOOR, Mode, Passage
from bot.knowledge.kb import KnowledgeBase

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_DOCS = SAMPLE_DIR / "docs"
SAMPLE_QUESTIONS = SAMPLE_DIR / "questions.jsonl"

OFF_TOPIC = (
    "What is the capital of Australia?",
    "How do I make banana bread?",
    "Who won the football World Cup in 2018?",
    "What's the weather going to be like tomorrow?",
    "Can you recommend a good science fiction novel?",
    "How many moons does Jupiter have?",
    "What is the boiling point of water at high altitude?",
    "Write me a poem about autumn leaves.",
    "How do I change a flat tyre on my bike?",
    "What is the best way to cook rice?",
    "Who painted the Mona Lisa?",
    "How tall is Mount Everest?",
    "What's a good name for a golden retriever puppy?",
    "Explain the theory of relativity in simple terms.",
    "How do I get rid of aphids on my roses?",
    "What are the rules of chess castling?",
    "Which planet is closest to the sun?",
    "How long should I boil an egg for a runny yolk?",
    "What's the difference between a crocodile and an alligator?",
    "Tell me a joke about penguins.",
    "What year did the Berlin Wall fall?",
    "How do I tune a guitar by ear?",
    "What is photosynthesis?",
    "Best beaches in Thailand for snorkelling?",
    "How many calories are in an avocado?",
    "Who wrote Pride and Prejudice?",
    "How do volcanoes form?",
    "What's the plot of the movie Inception?",
    "How do I train my cat to use a scratching post?",
    "What is the speed of light?",
    "How do you say thank you in Japanese?",
    "What's the recipe for a classic margarita cocktail?",
    "Why is the sky blue?",
    "How do I knit a scarf for beginners?",
    "What are the symptoms of a cold in dogs?",
    "Which team won the NBA finals last year?",
    "How deep is the Mariana Trench?",
    "What's the best houseplant for low light?",
    "How do bees make honey?",
    "Who was the first person to walk on the moon?",
)
UNCOVERED = (
    "How does the company pension scheme work?",
    "When are salary reviews and how big are raises?",
    "Do we get an annual bonus?",
    "How do performance reviews work here?",
    "Is there a commuting allowance in the Netherlands?",
    "What's the extra pay for weekend support shifts?",
)


def load_questions(
    path: Path = SAMPLE_QUESTIONS, splits: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    wanted = set(splits) if splits is not None else None
    with open(path, encoding="utf-8") as handle:
        questions = [json.loads(line) for line in handle if line.strip()]
    return [q for q in questions if wanted is None or q["split"] in wanted]


def is_hit(passage: Passage, section: str) -> bool:
    """Right section: the passage's title is the question's section or one of its subsections."""
    return passage.title == section or passage.title.startswith(section + " > ")


@dataclass(frozen=True)
class Recall:
    questions: int
    recall_at_1: float
    recall_at_5: float
    mrr_at_5: float


def recall(
    kb: KnowledgeBase, questions: Sequence[dict[str, Any]], *, field: str = "question", mode: Mode = "hybrid"
) -> Recall:
    """Recall with the relevance floor in force, as the bot would search."""
    at1 = at5 = 0
    reciprocal = 0.0
    for question in questions:
        passages = kb.search(question[field], k=5, mode=mode)
        ranks = [i for i, p in enumerate(passages, start=1) if is_hit(p, question["section"])]
        if ranks:
            at1 += ranks[0] == 1
            at5 += 1
            reciprocal += 1 / ranks[0]
    n = max(len(questions), 1)
    return Recall(len(questions), at1 / n, at5 / n, reciprocal / n)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    in_domain_p01: float  # 1st percentile of each question's best similarity
    in_domain_median: float
    off_topic_max: float
    off_topic_median: float
    in_domain_kept: float  # share of calibration questions that pass the floor
    off_topic_rejected: float  # share of off-topic questions that do not
    uncovered_passing: float  # share of deliberately uncovered questions that still pass
    right_below_floor: float  # share of right passages less similar than the floor itself
    right_below_passage_floor: float  # share of right passages dropped as noise

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def _similarities(kb: KnowledgeBase, query: str, section: str | None = None) -> list[float]:
    passages = kb.search(query, k=100, mode="dense", min_similarity=-1.0)
    return [p.similarity for p in passages if section is None or is_hit(p, section)]


def calibrate(kb: KnowledgeBase, questions: Sequence[dict[str, Any]]) -> Calibration:
    queries = [(q[field], q["section"]) for q in questions for field in ("question", "reworded")]
    best = np.array([max(_similarities(kb, query), default=-1.0) for query, _ in queries])
    right = np.array([max(_similarities(kb, query, section), default=-1.0) for query, section in queries])
    off = np.array([max(_similarities(kb, q), default=-1.0) for q in OFF_TOPIC])
    uncovered = np.array([max(_similarities(kb, q), default=-1.0) for q in UNCOVERED])
    p01 = float(np.quantile(best, 0.01))
    threshold = math.floor((p01 + float(off.max())) / 2 * 100) / 100
    return Calibration(
        threshold=threshold,
        in_domain_p01=p01,
        in_domain_median=float(np.median(best)),
        off_topic_max=float(off.max()),
        off_topic_median=float(np.median(off)),
        in_domain_kept=float((best >= threshold).mean()),
        off_topic_rejected=float((off < threshold).mean()),
        uncovered_passing=float((uncovered >= threshold).mean()),
        right_below_floor=float((right < threshold).mean()),
        right_below_passage_floor=float((right < threshold * PASSAGE_FLOOR).mean()),
    )


def main() -> None:  # pragma: no cover - a manual tool; bench/retrieval.py runs the same
    import tempfile

    from bot.knowledge.embedder import SentenceTransformerEmbedder

    with tempfile.TemporaryDirectory() as index_dir:
        kb = KnowledgeBase.open(index_dir, SentenceTransformerEmbedder())
        kb.ingest([SAMPLE_DOCS], progress=True)
        result = calibrate(kb, load_questions(splits=("train", "validation")))
        print(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    main()
