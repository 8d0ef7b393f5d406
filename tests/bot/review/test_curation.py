"""Curation without a platform: the review queue's order, reviewers' decisions and who may make them,
review rounds, correction recall into a real knowledge base (the next answer cites the correction,
in this process and in another one), and re-review when a cited page changes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.errors import NotAReviewer
from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.pipeline import Pipeline, Question
from bot.review.desk import ReviewDesk, ReviewPolicy, correction_source
from feedback import errors, queries, store
from feedback.db import Database
from model_server.client import AsyncModelClient
from tests.support.fakes import FakeModel

LEAVE_PAGE = "# Annual Leave\n\n## Allowance\n\nEveryone gets 25 days of paid annual leave a year.\n"
LUNCH_PAGE = "# Canteen\n\n## Opening hours\n\nThe canteen serves lunch from noon to two.\n"


def _answer(
    db: Database,
    *,
    question: str = "How much leave?",
    confidence: float | None = 0.8,
    passage_ids: tuple[str, ...] = ("p1",),
    platform: str = "slack",
) -> int:
    with db.writer() as s:
        q = store.record_question(s, platform=platform, user_id="U1", text=question, channel="C1")
        sources = [{"id": p, "title": f"Page {p}", "source": f"{p}.md", "url": None} for p in passage_ids]
        a = store.record_answer(
            s,
            question_id=q.id or 0,
            text="25 days.",
            adapter="base",
            passage_ids=passage_ids,
            sources=sources,
            confidence=confidence,
        )
        return a.id or 0


def _correct(db: Database, answer_id: int, text: str = "It is 27 days.", author: str = "U1") -> int:
    with db.writer() as s:
        return store.submit_correction(s, answer_id=answer_id, author=author, text=text).id or 0


def _down(db: Database, answer_id: int, *users: str) -> None:
    with db.writer() as s:
        for user in users:
            store.record_vote(s, answer_id=answer_id, user_id=user, value=-1, source="button")


def test_queue_puts_unsure_and_disliked_answers_first(database: Database) -> None:
    sure = _correct(database, _answer(database, confidence=0.9))
    unsure = _correct(database, _answer(database, confidence=0.2))
    disliked_answer = _answer(database, confidence=0.9)
    disliked = _correct(database, disliked_answer)
    _down(database, disliked_answer, "U5", "U6", "U7", "U8", "U9", "U10", "U11", "U12")  # 0.1 + 0.8
    unknown = _correct(database, _answer(database, confidence=None))
    closed = _correct(database, _answer(database, confidence=0.0))
    with database.writer() as s:
        store.review_correction(s, correction_id=closed, reviewer="R1", decision="reject", reason="wrong")

    with database.reader() as s:
        queue = queries.review_queue(s)
    assert [c.correction.id for c in queue] == [disliked, unsure, unknown, sure]
    assert queue[0].downvotes == 8 and queue[0].priority == pytest.approx(0.9)
    assert closed not in [c.correction.id for c in queue]


def test_only_reviewers_decide_and_k_approvals_approve(database: Database) -> None:
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1", "R2"], approvals_required=2))
    correction_id = _correct(database, _answer(database))
    with pytest.raises(NotAReviewer):
        desk.decide(correction_id, reviewer="U9", decision="approve")
    assert desk.case(correction_id).reviews == []  # type: ignore[union-attr]

    first = desk.decide(correction_id, reviewer="R1", decision="approve")
    assert (first.decided, first.case.correction.status, first.case.approvals) == (False, "pending", ["R1"])
    with pytest.raises(errors.InvalidTransition, match="already reviewed"):
        desk.decide(correction_id, reviewer="R1", decision="approve")
    second = desk.decide(correction_id, reviewer="R2", decision="approve", edited_text="27 days a year.")
    assert (second.decided, second.case.correction.status) == (True, "approved")
    assert second.case.correction.text == "27 days a year."
    assert second.indexed is False  # no knowledge base was given


def test_reviewers_default_to_admins() -> None:
    assert ReviewPolicy.of(reviewers=[], admins=["A1"]).reviewers == {"A1"}
    assert ReviewPolicy.of(reviewers=["R1"], admins=["A1"]).reviewers == {"R1"}
    assert ReviewPolicy.of(reviewers=[], admins=[]).reviewers == frozenset()


def test_rejection_keeps_the_reason_and_closes_it(database: Database) -> None:
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1", "R2"], approvals_required=2))
    correction_id = _correct(database, _answer(database))
    outcome = desk.decide(correction_id, reviewer="R1", decision="reject", reason="The policy says 25.")
    assert (outcome.decided, outcome.case.correction.status) == (True, "rejected")
    assert [r.reason for r in outcome.case.reviews] == ["The policy says 25."]
    with pytest.raises(errors.InvalidTransition, match="already rejected"):
        desk.decide(correction_id, reviewer="R2", decision="approve")
    with pytest.raises(errors.InvalidTransition, match="stays closed"), database.writer() as s:
        store.reopen_correction(s, correction_id=correction_id, reason="page changed")


def test_reopened_correction_starts_a_new_round(database: Database) -> None:
    correction_id = _correct(database, _answer(database))
    with database.writer() as s:
        store.review_correction(s, correction_id=correction_id, reviewer="R1", decision="approve")
        with pytest.raises(errors.InvalidInput):
            store.reopen_correction(s, correction_id=correction_id, reason="  ")
        reopened = store.reopen_correction(s, correction_id=correction_id, reason="The leave page changed.")
        assert (reopened.status, reopened.review_round, reopened.decided_at) == ("pending", 2, None)
    with database.reader() as s:
        case = queries.review_case(s, correction_id)
        assert case is not None and case.reviews == [] and case.correction.stale_reason
        assert [c.correction.id for c in queries.review_queue(s)] == [correction_id]
    with database.writer() as s:  # the same reviewer may approve again, in the new round
        again = store.review_correction(s, correction_id=correction_id, reviewer="R1", decision="approve")
    assert (again.status, again.stale_reason) == ("approved", None)


# --- correction recall, with a real knowledge base --------------------------------------------------


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE_PAGE)
    (folder / "canteen.md").write_text(LUNCH_PAGE)
    return folder


def _pipeline(kb: KnowledgeBase, database: Database, model: FakeModel) -> Pipeline:
    client = AsyncModelClient("http://model.test", transport=httpx.MockTransport(model), retries=0)
    return Pipeline(retriever=kb, client=client, model_name=lambda: "base", database=database)


async def test_an_approved_correction_is_cited_by_the_next_answer(
    database: Database, docs: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    kb.ingest([docs], progress=False)
    model = FakeModel("You get 25 days.")
    pipeline = _pipeline(kb, database, model)
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]), knowledge=kb)

    first = await pipeline.answer(Question("How many days of annual leave do I get?", user_id="U1"))
    assert [s.title for s in first.sources][:1] == ["Annual Leave > Allowance"]
    case = desk.submit(
        answer_id=first.answer_id or 0, author="U1", text="Full-time staff get 27 days of annual leave."
    )
    assert case.answer.sources[0]["title"] == "Annual Leave > Allowance"  # shown to reviewers
    not_yet = await pipeline.answer(Question("How much annual leave do full-time staff get?"))
    assert "Reviewed correction" not in " ".join(s.title for s in not_yet.sources)

    outcome = desk.decide(case.correction.id or 0, reviewer="R1", decision="approve")
    assert outcome.indexed
    reworded = await pipeline.answer(Question("How much annual leave do full-time staff get?"))
    titles = [s.title for s in reworded.sources]
    assert f"Reviewed correction #{case.correction.id}" in titles
    assert "27 days" in model.requests[-1]["messages"][0]["content"]  # the model read the correction
    passage = next(p for p in kb.search("annual leave full-time staff") if p.source.startswith("correction:"))
    assert passage.metadata["approved_by"] == ["R1"] and passage.metadata["approved_at"]
    await pipeline.client.aclose()


def test_another_process_sees_the_correction_without_a_restart(
    database: Database, docs: Path, tmp_path: Path
) -> None:
    """The bot's open knowledge base picks up a correction that `chatbot review` indexed."""
    bots_kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder(), reload_interval=0)
    bots_kb.ingest([docs], progress=False)
    assert not [p for p in bots_kb.search("annual leave") if p.source.startswith("correction:")]

    reviewers_kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())  # as another process opens it
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]), knowledge=reviewers_kb)
    correction_id = _correct(database, _answer(database, question="How many days of annual leave?"))
    assert desk.decide(correction_id, reviewer="R1", decision="approve").indexed
    found = [p.source for p in bots_kb.search("annual leave days")]
    assert correction_source(correction_id) in found


def test_recall_off_indexes_nothing(database: Database, tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"], recall=False), knowledge=kb)
    correction_id = _correct(database, _answer(database))
    assert desk.decide(correction_id, reviewer="R1", decision="approve").indexed is False
    assert kb.stats().chunks == 0
    assert ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]), knowledge=kb).reindex() == 1
    assert kb.stats().chunks == 1


async def test_a_changed_source_sends_the_correction_back_for_review(
    database: Database, docs: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    kb.ingest([docs], progress=False)
    pipeline = _pipeline(kb, database, FakeModel("25 days."))
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]), knowledge=kb)
    leave = await pipeline.answer(Question("How many days of annual leave do I get?", user_id="U1"))
    lunch = await pipeline.answer(Question("When does the canteen serve lunch?", user_id="U1"))
    leave_fix = desk.submit(answer_id=leave.answer_id or 0, author="U1", text="27 days.").correction.id or 0
    lunch_fix = (
        desk.submit(answer_id=lunch.answer_id or 0, author="U1", text="Noon to three.").correction.id or 0
    )
    desk.decide(leave_fix, reviewer="R1", decision="approve")
    desk.decide(lunch_fix, reviewer="R1", decision="approve")
    assert correction_source(leave_fix) in {p.source for p in kb.search("annual leave days")}

    report = kb.ingest([docs], progress=False)  # nothing changed: nothing flagged
    assert desk.recheck(report.changed_ids) == []

    (docs / "leave.md").write_text(LEAVE_PAGE.replace("25 days", "26 days"))
    report = kb.ingest([docs], progress=False)
    assert desk.recheck(report.changed_ids) == [leave_fix]
    case = desk.case(leave_fix)
    assert case is not None and case.correction.status == "pending"
    assert "Annual Leave > Allowance" in (case.correction.stale_reason or "")
    assert correction_source(leave_fix) not in {p.source for p in kb.search("annual leave days")}
    assert desk.case(lunch_fix).correction.status == "approved"  # type: ignore[union-attr]

    again = desk.decide(leave_fix, reviewer="R1", decision="approve")  # a new round: R1 may approve again
    assert again.indexed and correction_source(leave_fix) in {
        p.source for p in kb.search("annual leave days")
    }
    await pipeline.client.aclose()


@pytest.mark.parametrize("scrubber", ["regex", "presidio"])
def test_an_approved_correction_is_scrubbed_before_it_is_indexed(
    database: Database, tmp_path: Path, scrubber: str
) -> None:
    if scrubber == "presidio":
        pytest.importorskip("presidio_analyzer", reason="presidio-analyzer is not installed")
    from chatbot.settings import Settings
    from chatbot.wiring import scrubbing

    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    scrub = scrubbing(Settings(data_dir=tmp_path, pii_scrubber=scrubber))  # type: ignore[arg-type]
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1"]), knowledge=kb, scrub=scrub)
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="Who fixes laptops?", channel="C1")
        desk_phone = "Documents:\n[1] IT\nThe IT desk answers on +31 10 555 0100."
        asked = {"role": "user", "content": "Who fixes laptops?"}
        prompt = [{"role": "system", "content": desk_phone}, asked]
        a = store.record_answer(s, question_id=q.id or 0, text="Ask IT.", adapter="base", prompt=prompt)
    text = "Call the IT desk on +31 10 555 0100, or my mobile +31 6 1234 5678 (ask for Maria Gonzalez)."
    case = desk.submit(answer_id=a.id or 0, author="U2", text=text)
    assert desk.decide(case.correction.id or 0, reviewer="R1", decision="approve").indexed
    [passage] = [p for p in kb.search("IT desk laptops mobile") if p.source.startswith("correction:")]
    assert "+31 10 555 0100" in passage.text  # the company's published number stays
    assert "1234 5678" not in passage.text and "[PHONE]" in passage.text
    if scrubber == "presidio":
        assert "Maria Gonzalez" not in passage.text and "[PERSON]" in passage.text
