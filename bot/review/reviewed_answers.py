"""Reviewed answers: when a question is close enough to an approved correction's question, the bot
answers with the corrected answer itself, verbatim and marked as reviewed, instead of asking the
model (which, at 135M parameters, often ignores even a correction placed in its context).

    reviewed = ReviewedAnswers(database, kb.embedder, threshold=0.82)
    advice = reviewed.consult("how many vacation days do we get per year?")
    advice.match          # the reviewed answer to give, or None: ask the model ...
    advice.arrange(found) # ... with the closest correction's passage first, withdrawn ones dropped

Approved corrections are read from SQL on every question (one small query), so a correction
approved, withdrawn for re-review or rejected in any process counts from the next question on;
only the embeddings of their questions are cached. `recall=False` (CORRECTION_RECALL=false) gives
no reviewed answers and drops every correction passage, so the model answers on its own.

The threshold (REVIEWED_ANSWER_SIMILARITY) is a cosine similarity between the two questions,
calibrated on the sample questions by `bench/reviewed_match.py`: the lowest value at which no
sample question, in either wording, matches a different question's correction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from bot.knowledge.embedder import Embedder
from bot.review.desk import CORRECTION_SOURCE, correction_source, correction_title
from feedback import queries
from feedback.db import Database
from feedback.queries import LiveCorrection

REVIEWED_ADAPTER = "reviewed"  # the `adapter` recorded for an answer no model wrote


class _Sourced(Protocol):
    @property
    def source(self) -> str: ...


P = TypeVar("P", bound=_Sourced)


@dataclass(frozen=True)
class ReviewedMatch:
    """An approved correction close enough to the question to be its answer."""

    correction: LiveCorrection
    similarity: float

    @property
    def correction_id(self) -> int:
        return self.correction.correction_id

    def text(self) -> str:
        """The corrected answer, verbatim, after a short lead saying who approved it and when."""
        who = ", ".join(self.correction.approved_by) or "a reviewer"
        moment = self.correction.approved_at
        when = f" on {moment.day} {moment:%B %Y}" if moment is not None else ""
        return f"Reviewed answer (approved by {who}{when}):\n\n{self.correction.text.strip()}"

    def sources(self) -> list[dict[str, Any]]:
        """The correction, then the page the corrected answer cited first ({"id", "title",
        "source", "url"}, as answers record them)."""
        own = correction_source(self.correction_id)
        title = correction_title(self.correction_id)
        return [{"id": own, "title": title, "source": own, "url": None}, *self._pages()[:1]]

    def page_ids(self) -> list[str]:
        """Every passage the corrected answer cited: a change to any of them sends back this
        correction, and any correction later made to the reviewed answer."""
        return [str(s["id"]) for s in self._pages()]

    def _pages(self) -> list[dict[str, Any]]:
        return [
            s
            for s in self.correction.sources
            if s.get("id") and not str(s.get("source", "")).startswith(CORRECTION_SOURCE)
        ]


@dataclass(frozen=True)
class Advice:
    """What the approved corrections say about one question."""

    match: ReviewedMatch | None
    live: frozenset[str]  # sources of the approved corrections, "correction:12"
    closest: str | None = None  # the source of the correction whose question is closest

    def arrange(self, passages: Sequence[P]) -> list[P]:
        """The closest correction's passages first, when retrieved, then the rest in rank order;
        passages of corrections no longer approved (or with recall off) are dropped. Other
        questions' corrections keep their rank: put first, they mislead a small model."""
        kept = [p for p in passages if not p.source.startswith(CORRECTION_SOURCE) or p.source in self.live]
        first = [p for p in kept if p.source == self.closest]
        return first + [p for p in kept if p.source != self.closest]


class ReviewedAnswers:
    def __init__(
        self, database: Database, embedder: Embedder, *, threshold: float, recall: bool = True
    ) -> None:
        self.database = database
        self.embedder = embedder
        self.threshold = threshold  # 0 (or less): never a reviewed answer, the closest still first
        self.recall = recall
        self._lock = threading.Lock()
        self._vectors: dict[tuple[int, str], np.ndarray] = {}

    def consult(self, question: str) -> Advice:
        """Blocking (SQL and an embedding): call it from a worker thread."""
        if not self.recall:
            return Advice(None, frozenset())
        with self.database.reader() as session:
            live = queries.live_corrections(session)
        sources = frozenset(correction_source(c.correction_id) for c in live)
        if not live or not question.strip():
            return Advice(None, sources)
        matrix = self._matrix(live)
        asked = np.asarray(self.embedder.embed([question.strip()])[0], dtype=np.float32)
        similarities = matrix @ asked
        # The best match; among equals the newest correction, which may refine an older one.
        best = max(range(len(live)), key=lambda i: (round(float(similarities[i]), 6), i))
        similarity = float(similarities[best])
        served = self.threshold > 0 and similarity >= self.threshold
        match = ReviewedMatch(live[best], similarity) if served else None
        return Advice(match, sources, correction_source(live[best].correction_id))

    def _matrix(self, live: Sequence[LiveCorrection]) -> np.ndarray:
        """The live corrections' question vectors, one row each; only new questions are embedded."""
        keys = [(c.correction_id, c.question.strip()) for c in live]
        with self._lock:
            known = {k: self._vectors[k] for k in keys if k in self._vectors}
        missing = [k for k in keys if k not in known]
        if missing:
            vectors = self.embedder.embed([question for _, question in missing])
            known.update(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
        with self._lock:
            # Only live corrections' vectors are kept: withdrawn, rejected or edited ones go.
            self._vectors = known
        return np.stack([known[k] for k in keys])
