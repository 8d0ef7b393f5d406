"""Answers into review without a vote: each run queues the least certain of the recent answers,
within a daily budget. An answer voted down comes first; then the lower the model's confidence
(its geometric-mean token probability) and retrieval's relevance (the closest passage's cosine),
the sooner. Nobody's answer is queued twice, nor one a person already corrected, nor the answers of
people who opted out of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from feedback import queries, store
from feedback.db import Database
from feedback.models import Answer

# Below these a reviewer is told why the case was queued (relevance: most covered questions'
# closest passage is above 0.45 on the sample wiki, most unanswerable ones below; docs/decisions.md).
LOW_CONFIDENCE = 0.6
LOW_RELEVANCE = 0.45


@dataclass(frozen=True)
class Candidate:
    answer_id: int
    uncertainty: float
    reasons: tuple[str, ...]
    downvoted: bool


def rank(answer: Answer, down_votes: int) -> Candidate:
    confidence = answer.confidence if answer.confidence is not None else 0.5
    relevance = answer.relevance if answer.relevance is not None else 0.5
    reasons = []
    if down_votes:
        reasons.append("downvoted")
    if answer.confidence is not None and answer.confidence < LOW_CONFIDENCE:
        reasons.append("low_confidence")
    if answer.relevance is not None and answer.relevance < LOW_RELEVANCE:
        reasons.append("low_relevance")
    uncertainty = round((1 - confidence) + (1 - relevance), 4)
    return Candidate(answer.id or 0, uncertainty, tuple(reasons), down_votes > 0)


class Sampler:
    def __init__(self, database: Database, *, daily_budget: int, lookback: timedelta = timedelta(days=2)):
        self.database = database
        self.daily_budget = daily_budget
        self.lookback = lookback

    def run(self, now: datetime | None = None) -> list[int]:
        """Queue what today's budget still allows; the case (correction) ids queued, first first."""
        now = now or datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        with self.database.reader() as session:
            left = self.daily_budget - queries.sampled_since(session, midnight)
            found = queries.sampling_candidates(session, since=now - self.lookback)
        if left <= 0 or not found:
            return []
        ranked = sorted(
            (rank(answer, down) for answer, _, down in found),
            key=lambda c: (not c.downvoted, -c.uncertainty, c.answer_id),
        )
        queued: list[int] = []
        for candidate in ranked:
            if len(queued) >= left:
                break
            with self.database.writer() as session:
                case = store.queue_answer(
                    session,
                    answer_id=candidate.answer_id,
                    reasons=candidate.reasons,
                    uncertainty=candidate.uncertainty,
                )
            if case is not None:
                queued.append(case.id or 0)
        return queued
