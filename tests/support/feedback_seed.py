"""Small helpers that fill the store through its public write functions, for admin and scheduler tests."""

from __future__ import annotations

from feedback import store
from feedback.db import Database


def answer(db: Database, *, adapter: str = "base", user: str = "U1") -> int:
    with db.writer() as s:
        q = store.record_question(s, platform="slack", user_id=user, text="How much leave?", channel="C1")
        a = store.record_answer(s, question_id=q.id or 0, text="27 days.", adapter=adapter)
        assert a.id is not None
        return a.id


def votes(db: Database, *, adapter: str, up: int, down: int) -> None:
    """`up` liked and `down` disliked answers of `adapter`, one vote each."""
    for value, n in ((1, up), (-1, down)):
        for i in range(n):
            answer_id = answer(db, adapter=adapter)
            with db.writer() as s:
                store.record_vote(s, answer_id=answer_id, user_id=f"U{i}", value=value, source="button")


def approved_correction(db: Database) -> int:
    answer_id = answer(db)
    with db.writer() as s:
        c = store.submit_correction(s, answer_id=answer_id, author="U2", text="28 days since 2026.")
        store.review_correction(s, correction_id=c.id or 0, reviewer="UREV", decision="approve")
        return c.id or 0


def adapters(db: Database, *names: str) -> None:
    """Register and promote each adapter in turn; the last one ends up active."""
    parent = None
    for name in names:
        with db.writer() as s:
            store.register_adapter(
                s, name=name, path=f"/adapters/{name}", base_model="smollm2", parent=parent
            )
            store.activate_adapter(s, name=name, actor="UADMIN")
        parent = name
