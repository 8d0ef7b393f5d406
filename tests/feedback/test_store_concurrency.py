"""Eight threads voting at once, on SQLite and PostgreSQL: nothing lost, no "database is locked",
and one row per user per answer."""

from __future__ import annotations

import threading

from sqlmodel import select

from feedback import store
from feedback.db import Database
from feedback.models import Vote

THREADS, VOTES_PER_THREAD, ANSWERS = 8, 200, 10


def test_concurrent_votes_collapse_per_user(database: Database) -> None:
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U0", text="Where is the VPN guide?")
        answer_ids = [
            store.record_answer(s, question_id=q.id, text=f"answer {i}", adapter="base").id
            for i in range(ANSWERS)
        ]
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def voter(t: int) -> None:
        try:
            start.wait()
            for i in range(VOTES_PER_THREAD):
                # Each of this thread's 100 (answer, user) pairs is voted twice: +1, later -1.
                user = f"U{t}-{i % 100}"
                value = 1 if i < 100 else -1
                with database.writer() as s:
                    store.record_vote(
                        s, answer_id=answer_ids[i % ANSWERS], user_id=user, value=value, source="button"
                    )
                if i % 20 == 0:  # and one user shared by every thread, on the same answer
                    with database.writer() as s:
                        store.record_vote(
                            s, answer_id=answer_ids[0], user_id="shared", value=1, source="reaction"
                        )
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=voter, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    with database.reader() as s:
        votes = s.exec(select(Vote)).all()
    own = [v for v in votes if v.user_id != "shared"]
    assert len(own) == THREADS * 100
    assert {v.value for v in own} == {-1}  # the later vote replaced the earlier one
    assert len({(v.answer_id, v.user_id) for v in votes}) == len(votes)
    assert [(v.answer_id, v.value) for v in votes if v.user_id == "shared"] == [(answer_ids[0], 1)]
