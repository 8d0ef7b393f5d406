"""Answers into review without a vote: the sampler's choice and budget, and the consensus on what a
sampled case keeps (the bot's answer, the teacher's draft, an edit), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.review.sampler import Sampler
from feedback import errors, store
from feedback.db import Database
from feedback.models import Correction


def answered(
    db: Database,
    text: str,
    *,
    confidence: float | None = 0.9,
    relevance: float | None = 0.7,
    user: str = "U1",
) -> int:
    with db.writer() as session:
        question = store.record_question(session, platform="slack", user_id=user, text=f"{text}?")
        answer = store.record_answer(
            session,
            question_id=question.id or 0,
            text=f"{text}.",
            adapter="base",
            confidence=confidence,
            relevance=relevance,
        )
        return answer.id or 0


def cases(db: Database) -> list[Correction]:
    with db.reader() as session:
        return list(session.exec(select(Correction).order_by(Correction.id)))


def test_the_least_certain_come_first_and_a_thumbs_down_before_them(database: Database) -> None:
    sure = answered(database, "sure", confidence=0.95, relevance=0.8)
    unsure = answered(database, "unsure", confidence=0.3, relevance=0.3)
    middling = answered(database, "middling", confidence=0.6, relevance=0.5)
    disliked = answered(database, "disliked", confidence=0.99, relevance=0.9)
    with database.writer() as session:
        store.record_vote(session, answer_id=disliked, user_id="U9", value=-1, source="button")

    queued = Sampler(database, daily_budget=3).run()

    found = cases(database)
    assert [c.id for c in found] == queued
    assert [c.answer_id for c in found] == [disliked, unsure, middling]  # the surest is left out
    assert found[0].reasons == ["downvoted"]
    assert found[1].reasons == ["low_confidence", "low_relevance"] and found[1].uncertainty == pytest.approx(
        1.4
    )
    assert all(c.origin == "sampled" and c.status == "pending" and c.author == "sampler" for c in found)
    assert found[1].text == "unsure."  # the bot's answer, for reviewers to confirm or change
    assert sure not in [c.answer_id for c in found]


def test_the_daily_budget_holds_across_runs_and_no_answer_is_queued_twice(database: Database) -> None:
    for n in range(5):
        answered(database, f"answer {n}", confidence=0.2 + n / 10)
    sampler = Sampler(database, daily_budget=2)
    assert len(sampler.run()) == 2
    assert sampler.run() == []  # today's budget is spent
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert len(sampler.run(now=tomorrow)) == 2
    assert len({c.answer_id for c in cases(database)}) == 4
    with database.writer() as session:
        assert (
            store.queue_answer(session, answer_id=cases(database)[0].answer_id, reasons=[], uncertainty=1)
            is None
        )


def test_corrected_opted_out_refused_and_reviewed_answers_are_never_queued(database: Database) -> None:
    corrected = answered(database, "corrected", confidence=0.1)
    answered(database, "private", confidence=0.1, user="U7")
    answered(database, "refused", confidence=None)  # nothing to confirm: no model answer
    with database.writer() as session:
        store.submit_correction(session, answer_id=corrected, author="U1", text="The right answer.")
        store.opt_out(session, user_id="U7")
    assert Sampler(database, daily_budget=10).run() == []
    assert [c.origin for c in cases(database)] == ["user"]


def _sampled(db: Database, *, draft: str | None = "The draft's answer.") -> int:
    answer_id = answered(db, "sampled", confidence=0.2)
    [case_id] = Sampler(db, daily_budget=1).run()
    if draft is not None:
        with db.writer() as session:
            store.attach_draft(session, correction_id=case_id, draft=draft, model="teacher", disagrees=True)
    assert answer_id
    return case_id


def review(db: Database, case_id: int, reviewer: str, **kw: object) -> Correction:
    with db.writer() as session:
        return store.review_correction(
            session, correction_id=case_id, reviewer=reviewer, decision="approve", approvals_required=2, **kw
        )


def test_two_reviewers_approving_the_draft_make_it_the_correction(database: Database) -> None:
    case_id = _sampled(database)
    assert "teacher_disagrees" in cases(database)[0].reasons
    assert review(database, case_id, "R1", choice="draft").status == "pending"
    done = review(database, case_id, "R2", choice="draft")
    assert (done.status, done.text) == ("approved", "The draft's answer.")


def test_reviewers_who_disagree_leave_the_case_open_for_a_third(database: Database) -> None:
    case_id = _sampled(database)
    review(database, case_id, "R1", choice="bot")
    assert review(database, case_id, "R2", choice="draft").status == "pending"  # one each: undecided
    with database.reader() as session:
        assert sorted(store.approval_keys(session, case_id, 1)) == [
            ("bot", ""),
            ("draft", "The draft's answer."),
        ]
    done = review(database, case_id, "R3", choice="bot")
    assert (done.status, done.text) == ("approved", "sampled.")  # the bot was right: a positive example


def test_edits_agree_only_when_they_say_the_same(database: Database) -> None:
    case_id = _sampled(database, draft=None)
    review(database, case_id, "R1", edited_text="Twenty-six days.")
    assert review(database, case_id, "R2", edited_text="26 days.").status == "pending"
    done = review(database, case_id, "R3", edited_text=" 26 days. ")
    assert (done.status, done.text) == ("approved", "26 days.")


def test_a_draft_choice_without_a_draft_is_refused_and_nothing_written(database: Database) -> None:
    case_id = _sampled(database, draft=None)
    with pytest.raises(errors.InvalidInput), database.writer() as session:
        store.review_correction(
            session, correction_id=case_id, reviewer="R1", decision="approve", choice="draft"
        )
    with database.writer() as session:
        store.attach_draft(session, correction_id=case_id, draft=None, model="teacher")  # a failed try
    [case] = cases(database)
    assert case.draft is None and case.draft_attempts == 1 and case.status == "pending"
