"""Which model answers a question while a canary is open: the candidate for `share` of the
conversation threads, the live model for the rest. A thread's side is a hash of the canary and the
thread, so every bot replica and every restart puts a thread on the same side, and a thread never
switches mid-way while the share stays.

    route = CanaryRoute(database)
    model = route(question, live_model)  # the candidate's name, or `live_model`
"""

from __future__ import annotations

import hashlib
import threading
import time

from bot.pipeline import Question
from feedback import queries
from feedback.db import Database

# A thread's side is read from SQL at most this often (seconds), so an admin's stop reaches every
# replica within it.
TTL = 2.0


def thread_key(question: Question) -> str:
    """The conversation thread a question belongs to (outside threads: the person, per channel)."""
    where = f"{question.platform}|{question.workspace}|{question.channel}"
    return f"{where}|{question.thread}" if question.thread else f"{where}|user:{question.user_id}"


def on_candidate_side(canary_id: int, share: float, key: str) -> bool:
    digest = hashlib.sha256(f"{canary_id}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class CanaryRoute:
    def __init__(self, database: Database, *, ttl: float = TTL) -> None:
        self.database = database
        self.ttl = ttl
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._open: tuple[int, str, str, float] | None = None  # id, candidate, live, share

    def current(self) -> tuple[int, str, str, float] | None:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl:
                with self.database.reader() as session:
                    canary = queries.open_canary(session)
                    self._open = (
                        None
                        if canary is None
                        else (canary.id or 0, canary.candidate, canary.live, canary.share)
                    )
                self._read_at = time.monotonic()
            return self._open

    def __call__(self, question: Question, live_model: str) -> str:
        """The candidate for a thread on its side, while the canary stands beside this live model."""
        canary = self.current()
        if canary is None:
            return live_model
        canary_id, candidate, live, share = canary
        if live != live_model:  # the live model changed since (a rollback): the canary no longer applies
            return live_model
        return candidate if on_candidate_side(canary_id, share, thread_key(question)) else live_model
