"""A privacy request (`chatbot feedback forget`): the person's questions, the answers to them and
everything on those answers (votes, corrections, sampled review cases and their reviews), their own
votes and corrections elsewhere, gone on both databases; a correction of theirs that was knowledge is
withdrawn; other people's data and reviewers' decisions on other cases stay; a review click on a
deleted case is refused with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.review.desk import ReviewDesk, ReviewPolicy, correction_source
from feedback import errors, queries, store
from feedback.db import Database
from feedback.models import AdminRefusal, Answer, Correction, Erasure, KeptEvent, Question, Review, Vote


def ask(db: Database, user: str, text: str = "How much leave?") -> int:
    with db.writer() as s:
        q = store.record_question(s, platform="slack", user_id=user, text=text, channel="C1")
        return store.record_answer(s, question_id=q.id or 0, text="25 days.", adapter="base").id or 0


def counts(db: Database) -> dict[str, int]:
    with db.reader() as s:
        return {
            table.__name__: len(list(s.exec(select(table))))
            for table in (Question, Answer, Vote, Correction, Review, AdminRefusal)
        }


def test_forgetting_a_person_deletes_their_data_and_only_theirs(database: Database, tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]), knowledge=kb)
    theirs, sampled_theirs, others = ask(database, "U9"), ask(database, "U9"), ask(database, "U1")
    with database.writer() as s:
        store.record_vote(s, answer_id=theirs, user_id="U1", value=-1, source="button")  # on their answer
        store.record_vote(s, answer_id=others, user_id="U9", value=1, source="button")  # theirs, elsewhere
        store.record_vote(s, answer_id=others, user_id="U2", value=1, source="button")  # stays
        on_theirs = store.submit_correction(s, answer_id=theirs, author="U1", text="It is 27 days.")
        by_them = store.submit_correction(s, answer_id=others, author="U9", text="It is 28 days.")
        by_other = store.submit_correction(s, answer_id=others, author="U2", text="It is 29 days.")
        case = store.queue_answer(s, answer_id=sampled_theirs, reasons=["low_confidence"], uncertainty=1.0)
        store.record_refusal(s, platform="slack", user_id="U9", place="C1", command="/chatbot retrain")
    assert case is not None
    desk.decide(by_them.id or 0, reviewer="R1", decision="approve")  # indexed as knowledge
    desk.decide(by_other.id or 0, reviewer="R1", decision="approve")
    assert any(p.source == correction_source(by_them.id or 0) for p in kb.search("28 days leave"))

    gone = desk.forget("U9")

    assert (gone.questions, gone.answers, gone.votes, gone.reviews, gone.refusals) == (2, 2, 2, 1, 1)
    assert gone.corrections == sorted([on_theirs.id or 0, by_them.id or 0, case.id or 0])
    assert counts(database) == {
        "Question": 1,
        "Answer": 1,
        "Vote": 1,
        "Correction": 1,
        "Review": 1,  # R1's decision on U2's correction
        "AdminRefusal": 0,
    }
    assert not any(p.source == correction_source(by_them.id or 0) for p in kb.search("28 days leave"))
    assert any(p.source == correction_source(by_other.id or 0) for p in kb.search("29 days leave"))
    with database.reader() as s:
        assert [c.correction.id for c in queries.review_queue(s)] == []


def test_a_click_on_a_case_deleted_since_is_refused_with_a_message(database: Database) -> None:
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]))
    with database.writer() as s:
        case = store.queue_answer(s, answer_id=ask(database, "U9"), reasons=["low_confidence"], uncertainty=1)
    assert case is not None
    desk.forget("U9")
    with pytest.raises(errors.UnknownCorrection):
        desk.decide(case.id or 0, reviewer="R1", decision="approve", choice="draft")
    assert counts(database)["Review"] == 0


def test_forgetting_nobody_is_refused(database: Database) -> None:
    with database.writer() as s, pytest.raises(errors.FeedbackError):
        store.forget_person(s, user_id="  ")


def test_the_next_run_says_how_many_people_were_forgotten_since_the_last(database: Database) -> None:
    ask(database, "U8")
    ask(database, "U9")
    with database.writer() as s:
        store.keep_event(s, key="slack:E9", body={"event": {"user": "U9", "text": "hi"}}, owner="a")
        store.keep_event(s, key="slack:E1", body={"event": {"user": "U1", "text": "hi"}}, owner="a")
        teams = {"from": {"id": "29:x", "aadObjectId": "U9"}, "text": "hi"}
        store.keep_event(s, key="teams:T9", body=teams, owner="a")
        store.forget_person(s, user_id="U8")
        first = store.queue_run(s, trigger="cli")
        store.start_run(s, run_id=first.id or 0)
    with database.writer() as s:
        store.forget_person(s, user_id="U9")  # while or after the first run: counted by the next
        second = store.queue_run(s, trigger="cli")
    with database.reader() as s:
        assert queries.erasures_since(s, queries.previous_run_start(s, first.id or 0)) == 2  # all
        assert queries.erasures_since(s, queries.previous_run_start(s, second.id or 0)) == 1
        erasures = s.exec(select(Erasure)).all()
        kept = [k.key for k in s.exec(select(KeptEvent))]
    assert [(e.questions, e.answers) for e in erasures] == [(1, 1), (1, 1)]
    assert kept == ["slack:E1"]  # U9's unanswered questions (Slack and Teams) went with the rest
