"""The store's write functions on SQLite and PostgreSQL: what they write, what they refuse."""

from __future__ import annotations

import pytest
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from feedback import errors, queries, store
from feedback.db import Database
from feedback.models import AdapterChange, Correction, ProcessedEvent, Review, Vote


def _answer(db: Database, *, text_: str = "Annual leave is 25 days.", ref: str | None = None) -> int:
    with db.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="How much leave?", channel="C1")
        a = store.record_answer(
            s, question_id=q.id, text=text_, adapter="base", passage_ids=["p1", "p2"], confidence=0.8
        )
        if ref:
            store.attach_reply(s, answer_id=a.id, reply_channel="C1", reply_ref=ref)
        assert a.id is not None
        return a.id


def _count(db: Database, table: type) -> int:
    with db.reader() as s:
        return s.exec(select(func.count()).select_from(table)).one()


def test_answer_is_found_by_its_platform_reply(database: Database) -> None:
    answer_id = _answer(database, ref="1712345678.000100")
    with database.reader() as s:
        found = queries.find_answer_by_reply(
            s, platform="slack", reply_channel="C1", reply_ref="1712345678.000100"
        )
        assert found is not None and found.id == answer_id
        assert found.passage_ids == ["p1", "p2"] and found.adapter == "base"
        assert (
            queries.find_answer_by_reply(s, platform="slack", reply_channel="C1", reply_ref="other") is None
        )


def test_empty_question_is_refused(database: Database) -> None:
    with database.writer() as s, pytest.raises(errors.InvalidInput):
        store.record_question(s, platform="slack", user_id="U1", text="   ")


def test_vote_for_unknown_answer_writes_nothing(database: Database) -> None:
    with database.writer() as s, pytest.raises(errors.UnknownAnswer, match="no answer #999"):
        store.record_vote(s, answer_id=999, user_id="U1", value=1, source="button")
    assert _count(database, Vote) == 0


def test_later_vote_replaces_earlier(database: Database) -> None:
    answer_id = _answer(database)
    with database.writer() as s:
        store.record_vote(s, answer_id=answer_id, user_id="U1", value=1, source="reaction")
        vote = store.record_vote(
            s, answer_id=answer_id, user_id="U1", value=-1, source="button", comment="wrong"
        )
        store.record_vote(s, answer_id=answer_id, user_id="U2", value=1, source="button")
    assert (vote.value, vote.source, vote.comment) == (-1, "button", "wrong")
    with database.reader() as s:
        votes = queries.votes_for(s, answer_id)
    assert sorted((v.user_id, v.value) for v in votes) == [("U1", -1), ("U2", 1)]


def test_withdrawn_reaction_removes_only_that_vote(database: Database) -> None:
    answer_id = _answer(database)
    with database.writer() as s:
        store.record_vote(s, answer_id=answer_id, user_id="U1", value=1, source="reaction")
        # the 👎 reaction was never the recorded vote: nothing to remove
        assert not store.withdraw_vote(s, answer_id=answer_id, user_id="U1", source="reaction", value=-1)
        assert store.withdraw_vote(s, answer_id=answer_id, user_id="U1", source="reaction", value=1)
        # a button vote is not withdrawn by removing a reaction
        store.record_vote(s, answer_id=answer_id, user_id="U2", value=-1, source="button")
        assert not store.withdraw_vote(s, answer_id=answer_id, user_id="U2", source="reaction")
    assert _count(database, Vote) == 1


def test_invalid_vote_value_is_refused(database: Database) -> None:
    answer_id = _answer(database)
    with database.writer() as s, pytest.raises(errors.InvalidInput):
        store.record_vote(s, answer_id=answer_id, user_id="U1", value=5, source="button")
    assert _count(database, Vote) == 0


def test_empty_correction_writes_nothing(database: Database) -> None:
    answer_id = _answer(database)
    with database.writer() as s, pytest.raises(errors.EmptyCorrection):
        store.submit_correction(s, answer_id=answer_id, author="U1", text=" \n ")
    with database.writer() as s, pytest.raises(errors.UnknownAnswer):
        store.submit_correction(s, answer_id=12345, author="U1", text="It is 30 days.")
    assert _count(database, Correction) == 0


def test_correction_needs_k_approvals_and_a_rejection_closes_it(database: Database) -> None:
    answer_id = _answer(database)
    with database.writer() as s:
        first = store.submit_correction(s, answer_id=answer_id, author="U1", text="It is 30 days.")
        second = store.submit_correction(s, answer_id=answer_id, author="U2", text="It is 20 days.")
        c = store.review_correction(
            s, correction_id=first.id, reviewer="R1", decision="approve", approvals_required=2
        )
        assert c.status == "pending"
        with pytest.raises(errors.InvalidTransition, match="already reviewed"):
            store.review_correction(s, correction_id=first.id, reviewer="R1", decision="approve")
        c = store.review_correction(
            s,
            correction_id=first.id,
            reviewer="R2",
            decision="approve",
            edited_text="It is 30 days a year.",
            approvals_required=2,
        )
        assert (c.status, c.text) == ("approved", "It is 30 days a year.")
        r = store.review_correction(
            s, correction_id=second.id, reviewer="R1", decision="reject", reason="contradicts the policy"
        )
        assert r.status == "rejected" and r.decided_at is not None
        with pytest.raises(errors.InvalidTransition, match="already rejected"):
            store.review_correction(s, correction_id=second.id, reviewer="R2", decision="approve")
        with pytest.raises(errors.UnknownCorrection):
            store.review_correction(s, correction_id=999, reviewer="R2", decision="approve")
    with database.reader() as s:
        reasons = s.exec(select(Review.reason).where(Review.correction_id == second.id)).all()
    assert reasons == ["contradicts the policy"]


def test_a_retried_event_is_claimed_once(database: Database) -> None:
    with database.writer() as s:
        assert store.claim_event(s, key="slack:Ev123")
        assert not store.claim_event(s, key="slack:Ev123")
        assert store.claim_event(s, key="slack:Ev124")
    assert _count(database, ProcessedEvent) == 2


def _adapter(db: Database, name: str, parent: str | None = None) -> None:
    with db.writer() as s:
        store.register_adapter(s, name=name, path=f"/adapters/{name}", base_model="smollm2", parent=parent)


def test_promotion_and_rollback_keep_exactly_one_active(database: Database) -> None:
    _adapter(database, "kb-v1")
    _adapter(database, "kb-v2", parent="kb-v1")
    with database.writer() as s:
        store.activate_adapter(s, name="kb-v1", actor="U-admin")
        store.activate_adapter(s, name="kb-v2", actor="scheduler")
        with pytest.raises(errors.InvalidTransition, match="already active"):
            store.activate_adapter(s, name="kb-v2", actor="U-admin")
    with database.reader() as s:
        assert [a.name for a in queries.list_adapters(s) if a.status == "active"] == ["kb-v2"]
    with database.writer() as s:
        back = store.rollback_adapter(s, actor="U-admin", reason="worse answers")
        assert back is not None and back.name == "kb-v1"
        assert store.rollback_adapter(s, actor="U-admin") is None  # back to the base model
        with pytest.raises(errors.InvalidTransition, match="nothing to roll back"):
            store.rollback_adapter(s, actor="U-admin")
    with database.reader() as s:
        assert queries.active_adapter(s) is None
        changes = s.exec(select(AdapterChange).order_by(AdapterChange.id)).all()  # type: ignore[arg-type]
    assert [(c.action, c.from_name, c.to_name, c.actor) for c in changes] == [
        ("promote", None, "kb-v1", "U-admin"),
        ("promote", "kb-v1", "kb-v2", "scheduler"),
        ("rollback", "kb-v2", "kb-v1", "U-admin"),
        ("rollback", "kb-v1", None, "U-admin"),
    ]


def test_unknown_or_failed_adapter_cannot_be_activated(database: Database) -> None:
    _adapter(database, "kb-v1")
    with database.writer() as s:
        with pytest.raises(errors.UnknownAdapter, match="no adapter called 'kb-v9'"):
            store.activate_adapter(s, name="kb-v9", actor="U-admin")
        store.mark_adapter_failed(s, name="kb-v1", metrics={"reason": "NaN loss"})
        with pytest.raises(errors.InvalidTransition, match="failed validation"):
            store.activate_adapter(s, name="kb-v1", actor="U-admin")
        with pytest.raises(errors.InvalidInput, match="never reused"):
            store.register_adapter(s, name="kb-v1", path="/x", base_model="smollm2")
    with database.reader() as s:
        assert queries.active_adapter(s) is None
        assert s.exec(select(func.count()).select_from(AdapterChange)).one() == 0


def test_database_refuses_two_active_adapters(database: Database) -> None:
    _adapter(database, "kb-v1")
    _adapter(database, "kb-v2")
    with database.writer() as s:
        store.activate_adapter(s, name="kb-v1", actor="U-admin")
    # Go around the store on purpose: the constraint must hold even against raw SQL.
    with pytest.raises(IntegrityError), database.engine.begin() as conn:
        conn.execute(text("UPDATE adapterversion SET status = 'active' WHERE name = 'kb-v2'"))
    with database.reader() as s:
        assert [a.name for a in queries.list_adapters(s) if a.status == "active"] == ["kb-v1"]


def test_only_one_retrain_runs_at_a_time(database: Database) -> None:
    with database.writer() as s:
        first = store.queue_run(s, trigger="schedule")
        second = store.queue_run(s, trigger="admin", requested_by="U-admin")
        store.start_run(s, run_id=first.id)
        with pytest.raises(errors.RunInProgress):
            store.start_run(s, run_id=second.id)
        done = store.finish_run(s, run_id=first.id, status="failed", error="NaN loss at step 3")
        assert (done.status, done.error) == ("failed", "NaN loss at step 3")
        assert store.start_run(s, run_id=second.id).status == "running"
        with pytest.raises(errors.InvalidInput):
            store.finish_run(s, run_id=second.id, status="running")
        with pytest.raises(errors.UnknownRun):
            store.start_run(s, run_id=404)


def test_most_asked_counts_the_same_words_in_any_case_and_only_answered_ones(database: Database) -> None:
    from datetime import UTC, datetime, timedelta

    def asked(text_: str, *, confidence: float | None = 0.8, user: str = "U1") -> None:
        with database.writer() as session:
            question = store.record_question(session, platform="slack", user_id=user, text=text_)
            assert question.id is not None
            store.record_answer(
                session, question_id=question.id, text="…", adapter="base", confidence=confidence
            )

    for text_ in ("How many days of leave?", "how many days of leave? ", "HOW MANY DAYS OF LEAVE?"):
        asked(text_)
    asked("Where is the office?")
    asked("Where is the office?", user="U2")
    asked("Is there a pension?", confidence=None)  # refused: never suggested
    asked("Is there a pension?", confidence=None)
    asked("Only once?")
    with database.reader() as session:
        since = datetime.now(UTC) - timedelta(days=1)
        top = queries.most_asked(session, since=since)
        assert [t.lower() for t in top] == ["how many days of leave?", "where is the office?"]
        assert queries.most_asked(session, since=datetime.now(UTC) + timedelta(days=1)) == []
