"""What arrives from outside reaches the store the same way on SQLite and PostgreSQL: text holding
U+0000 or a lone surrogate is stored (as U+FFFD) and read back, ids no row can have are "not found",
and refused admin attempts are recorded at a bounded rate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from feedback import errors, ids, queries, store
from feedback.db import Database
from feedback.models import AdminRefusal, Correction, Review, Vote, utcnow
from tests.support import feedback_seed as seed

OUT_OF_RANGE = [2**31, 2**63, 10**20, 0, -1]
NUL = "How much\x00 leave?"
SURROGATE = "How much\ud800 leave?"


def _count(db: Database, table: type) -> int:
    with db.reader() as s:
        return s.exec(select(func.count()).select_from(table)).one()


@pytest.mark.parametrize("text", [NUL, SURROGATE])
def test_text_the_databases_cannot_hold_is_stored_with_a_replacement_character(
    database: Database, text: str
) -> None:
    with database.writer() as s:
        q = store.record_question(s, platform="web", user_id=f"ada{text[8]}", text=text, channel="c\x00")
        a = store.record_answer(
            s, question_id=q.id or 0, text=f"Answer: {text}", adapter="base", prompt=[{"content": "x"}]
        )
        store.attach_reply(s, answer_id=a.id or 0, reply_channel="C\x00", reply_ref="1\x00")
        store.record_vote(
            s, answer_id=a.id or 0, user_id=f"U{text[8]}", value=-1, source="console", comment=text
        )
        c = store.submit_correction(s, answer_id=a.id or 0, author=f"A{text[8]}", text=f"Fixed: {text}")
        store.review_correction(
            s, correction_id=c.id or 0, reviewer=f"R{text[8]}", decision="reject", reason=text
        )
    stored = "How much\ufffd leave?"
    with database.reader() as s:
        question = queries.get_question(s, q.id or 0)
        assert question is not None and question.text == stored and question.user_id == "ada\ufffd"
        answer = queries.get_answer(s, a.id or 0)
        assert answer is not None and answer.text == f"Answer: {stored}"
        # the lookup a reaction makes finds it with what the platform sends
        found = queries.find_answer_by_reply(s, platform="web", reply_channel="C\x00", reply_ref="1\x00")
        assert found is not None and found.id == a.id
        [vote] = queries.votes_for(s, a.id or 0)
        assert (vote.user_id, vote.comment) == ("U\ufffd", stored)
        correction = s.get(Correction, c.id)
        assert correction is not None and correction.text == f"Fixed: {stored}"
        assert correction.status == "rejected"
        [review] = s.exec(select(Review)).all()
        assert (review.reviewer, review.reason) == ("R\ufffd", stored)


def test_ids_from_outside() -> None:
    assert ids.parse(7) == 7 and ids.parse("7") == 7 and ids.parse(ids.MAX_ID) == ids.MAX_ID
    for bad in (*OUT_OF_RANGE, True, "abc", "-1", "1e3", "١٢", "9" * 5000, None, 1.0, str(2**31)):
        assert ids.parse(bad) is None, bad


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_ids_no_row_can_have_are_not_found(database: Database, bad: int) -> None:
    seed.answer(database)
    with database.writer() as s:
        with pytest.raises(errors.UnknownAnswer):
            store.record_vote(s, answer_id=bad, user_id="U1", value=1, source="console")
        with pytest.raises(errors.UnknownAnswer):
            store.submit_correction(s, answer_id=bad, author="U1", text="Wrong.")
        with pytest.raises(errors.UnknownAnswer):
            store.attach_reply(s, answer_id=bad, reply_channel="C1", reply_ref="1.0")
        with pytest.raises(errors.InvalidInput):
            store.record_answer(s, question_id=bad, text="x", adapter="base")
        with pytest.raises(errors.UnknownCorrection):
            store.review_correction(s, correction_id=bad, reviewer="R1", decision="approve")
        with pytest.raises(errors.UnknownCorrection):
            store.reopen_correction(s, correction_id=bad, reason="changed")
        with pytest.raises(errors.UnknownCorrection):
            store.attach_review_card(s, correction_id=bad, channel="C1", ref="1.0")
        with pytest.raises(errors.UnknownRun):
            store.finish_run(s, run_id=bad, status="failed")
        assert store.withdraw_vote(s, answer_id=bad, user_id="U1", source="console") is False
    with database.reader() as s:
        assert queries.get_answer(s, bad) is None and queries.get_question(s, bad) is None
        assert queries.votes_for(s, bad) == [] and queries.review_case(s, bad) is None
    assert _count(database, Vote) == 0 and _count(database, Correction) == 0


def _refuse(db: Database, user: str, *, at: object = None) -> bool:
    with db.writer() as s:
        return store.record_refusal(
            s, platform="slack", user_id=user, place="C1", command="retrain", now=at or utcnow()
        )


def test_a_refused_admin_attempt_is_recorded_with_who_where_and_what(database: Database) -> None:
    with database.writer() as s:
        assert store.record_refusal(
            s, platform="teams", user_id="29:" + "x" * 200, place="a:conv", command="rollback " * 50
        )
    with database.reader() as s:
        [row] = queries.recent_refusals(s)
    assert (row.platform, row.place) == ("teams", "a:conv")
    assert row.user_id == ("29:" + "x" * 200)[:128] and row.command == ("rollback " * 50)[:256]


def test_refused_attempts_are_recorded_at_a_bounded_rate(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = [_refuse(database, "UFLOOD") for _ in range(store.REFUSALS_PER_SENDER + 3)]
    assert recorded == [True] * store.REFUSALS_PER_SENDER + [False] * 3
    assert _refuse(database, "UOTHER")  # one sender's flood does not silence the others
    assert _refuse(database, "UFLOOD", at=utcnow() + timedelta(seconds=61))  # a minute later

    monkeypatch.setattr(store, "REFUSALS_PER_MINUTE", 8)
    many = [_refuse(database, f"U{i}") for i in range(5)]
    assert many == [True] + [False] * 4  # 7 in the last minute, then the cap for everyone
    assert _count(database, AdminRefusal) == store.REFUSALS_PER_SENDER + 3


def test_only_the_newest_refusals_are_kept(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "REFUSALS_KEPT", 3)
    start = utcnow() - timedelta(hours=1)
    for i in range(6):
        assert _refuse(database, f"U{i}", at=start + timedelta(minutes=i * 2))
    with database.reader() as s:
        assert [r.user_id for r in queries.recent_refusals(s)] == ["U5", "U4", "U3"]
