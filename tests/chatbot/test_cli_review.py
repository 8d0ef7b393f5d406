"""`chatbot review` from a terminal, and `chatbot ingest` sending corrections back for review: the
real command (click's runner, settings from the environment), a real store on each backend and a real
knowledge base (the hashing embedder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.knowledge import HashingEmbedder, KnowledgeBase
from chatbot.cli import main
from feedback import queries, store
from feedback.db import Database


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: Database) -> Path:
    """DATA_DIR for the command, and DATABASE_URL naming the migrated store of either backend."""
    data = tmp_path / "data"
    data.mkdir()
    for name, value in {
        "DATA_DIR": str(data),
        "DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "EMBEDDING_MODEL": "hashing",
        "REVIEWERS": "R1,R2",
        "ADMIN_USERS": "A1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APPROVALS_REQUIRED", raising=False)
    return data


def open_store() -> Database:
    """The store `env` named, opened as the command opens it."""
    return Database(os.environ["DATABASE_URL"])


def propose(
    question: str,
    fix: str,
    *,
    confidence: float | None = 0.8,
    passages: tuple[dict[str, str], ...] = (),
) -> int:
    db = open_store()
    with db.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text=question, channel="C1")
        a = store.record_answer(
            s,
            question_id=q.id or 0,
            text="I am not sure.",
            adapter="base",
            confidence=confidence,
            passage_ids=[p["id"] for p in passages],
            sources=list(passages),
        )
        correction = store.submit_correction(s, answer_id=a.id or 0, author="U1", text=fix)
    db.dispose()
    return correction.id or 0


def status(correction_id: int) -> tuple[str, str]:
    db = open_store()
    with db.reader() as s:
        case = queries.review_case(s, correction_id)
    db.dispose()
    assert case is not None
    return case.correction.status, case.correction.text


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["review", *args], input=input)


def test_list_shows_the_queue_most_urgent_first(env: Path) -> None:
    sure = propose("Where is the office?", "At 1 Main Street.", confidence=0.9)
    unsure = propose("How much leave?", "27 days.", confidence=0.1)
    result = run("--list")
    assert result.exit_code == 0, result.output
    assert result.output.index(f"#{unsure} ") < result.output.index(f"#{sure} ")
    assert "Correction by U1: 27 days." in result.output and "Approvals: 0 of 1" in result.output


def test_approve_indexes_the_correction(env: Path) -> None:
    correction_id = propose("How many days of annual leave?", "Full-time staff get 27 days.")
    result = run("--approve", str(correction_id), "--as", "R1")
    assert result.exit_code == 0, result.output
    assert f"Correction #{correction_id} approved. It is in the knowledge base now." in result.output
    assert status(correction_id)[0] == "approved"
    kb = KnowledgeBase.open(env / "index", HashingEmbedder())
    assert [p.title for p in kb.search("annual leave days")] == [f"Reviewed correction #{correction_id}"]


def test_someone_who_is_not_a_reviewer_is_refused(env: Path) -> None:
    correction_id = propose("How much leave?", "27 days.")
    result = run("--approve", str(correction_id), "--as", "U9")
    assert result.exit_code == 1 and "Only reviewers" in result.output
    assert status(correction_id)[0] == "pending"


def test_reject_needs_a_reason_and_keeps_it(env: Path) -> None:
    correction_id = propose("How much leave?", "27 days.")
    missing = run("--reject", str(correction_id), "--as", "R1")
    assert missing.exit_code == 2 and "--reason" in missing.output
    assert status(correction_id)[0] == "pending"

    result = run("--reject", str(correction_id), "--reason", "It is 26 days.", "--as", "R1")
    assert result.exit_code == 0, result.output
    assert status(correction_id)[0] == "rejected"
    listed = CliRunner().invoke(main, ["review", "--list"])
    assert "No corrections are waiting" in listed.output
    again = run("--approve", str(correction_id), "--as", "R2")
    assert again.exit_code == 1 and "already rejected" in again.output


def test_edit_approves_the_edited_text(env: Path) -> None:
    correction_id = propose("How much leave?", "27 days.")
    result = run("--edit", str(correction_id), "--text", "27 days a year, full-time.", "--as", "R2")
    assert result.exit_code == 0, result.output
    assert status(correction_id) == ("approved", "27 days a year, full-time.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--approve", "1", "--reject", "1", "--reason", "x"], "Pick one"),
        (["--approve", "1", "--text", "x"], "--text goes with --edit"),
        (["--approve", "1", "--reason", "x"], "--reason goes with --reject"),
    ],
)
def test_contradictory_flags_are_refused(env: Path, args: list[str], message: str) -> None:
    correction_id = propose("How much leave?", "27 days.")
    result = run(*args, "--as", "R1")
    assert result.exit_code == 2 and message in result.output
    assert status(correction_id)[0] == "pending"


def test_unknown_correction_says_so(env: Path) -> None:
    result = run("--approve", "99", "--as", "R1")
    assert result.exit_code == 1 and "There is no correction #99" in result.output


def test_interactive_review_goes_through_the_queue(env: Path) -> None:
    first = propose("How much leave?", "27 days.", confidence=0.1)
    second = propose("Where is the office?", "At 1 Main Street.", confidence=0.5)
    third = propose("When is lunch?", "At noon.", confidence=0.9)
    result = run(input="R1\na\nr\nNot what the handbook says.\ns\n")
    assert result.exit_code == 0, result.output
    assert "3 corrections are waiting for review" in result.output
    assert status(first)[0] == "approved"
    assert status(second)[0] == "rejected"
    assert status(third)[0] == "pending"

    refused = run(input="U9\n")
    assert refused.exit_code == 1 and "Only reviewers" in refused.output


def test_changed_page_sends_the_correction_back_on_ingest(env: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\n## Allowance\n\nEveryone gets 25 days a year.\n")
    first = CliRunner().invoke(main, ["ingest", str(docs)])
    assert first.exit_code == 0, first.output
    kb = KnowledgeBase.open(env / "index", HashingEmbedder())
    [cited] = kb.search("leave allowance days", k=1)
    source = {"id": cited.id, "title": cited.title, "source": cited.source, "url": ""}
    correction_id = propose("How much leave?", "27 days.", passages=(source,))
    assert run("--approve", str(correction_id), "--as", "R1").exit_code == 0
    kb.refresh()
    assert [p for p in kb.search("leave allowance days") if p.title.startswith("Reviewed correction")]

    unchanged = CliRunner().invoke(main, ["ingest", str(docs)])
    assert "review queue" not in unchanged.output and status(correction_id)[0] == "approved"

    (docs / "leave.md").write_text("# Leave\n\n## Allowance\n\nEveryone gets 26 days a year.\n")
    changed = CliRunner().invoke(main, ["ingest", str(docs)])
    assert changed.exit_code == 0, changed.output
    assert f"went back to the review queue because a page they relied on changed: #{correction_id}" in (
        changed.output
    )
    assert status(correction_id)[0] == "pending"
    listed = run("--list")
    assert "Back for review: The source changed since it was reviewed: “Leave > Allowance”" in listed.output
    kb.refresh()
    assert not [p for p in kb.search("leave allowance days") if p.title.startswith("Reviewed correction")]


def sampled_with_draft(draft: str | None = "Leave is 26 days a year.") -> int:
    db = open_store()
    with db.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="How much leave?", channel="C1")
        a = store.record_answer(
            s,
            question_id=q.id or 0,
            text="Leave is 20 days.",
            adapter="base",
            confidence=0.2,
            sources=[{"id": "p1", "title": "Annual leave", "source": "hr/leave.md", "url": None}],
        )
        case = store.queue_answer(s, answer_id=a.id or 0, reasons=["low_confidence"], uncertainty=1.3)
        assert case is not None and case.id is not None
        if draft:
            store.attach_draft(s, correction_id=case.id, draft=draft, model="teacher", disagrees=True)
    db.dispose()
    return case.id


def test_a_sampled_case_shows_why_what_was_retrieved_and_the_draft(env: Path) -> None:
    case_id = sampled_with_draft()
    listed = run("--list")
    assert listed.exit_code == 0, listed.output
    assert f"#{case_id}" in listed.output
    assert "Queued because: low confidence, the teacher's draft disagrees" in listed.output
    assert "Retrieved: Annual leave (hr/leave.md)" in listed.output
    assert "Draft by teacher: Leave is 26 days a year." in listed.output


def test_two_reviewers_take_the_draft_and_their_agreement_is_reported(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVALS_REQUIRED", "2")
    case_id = sampled_with_draft()
    first = run("--draft", str(case_id), "--as", "R1")
    assert first.exit_code == 0 and "has 1 so far" in first.output
    second = run("--draft", str(case_id), "--as", "R2")
    assert second.exit_code == 0 and f"Correction #{case_id} approved." in second.output
    db = open_store()
    with db.reader() as s:
        case = queries.review_case(s, case_id)
        assert case is not None and case.correction.text == "Leave is 26 days a year."
    db.dispose()
    agreement = run("--agreement")
    assert "R1: agreed with the decision in 1 of 1 (100%)" in agreement.output
    assert "Overall: 100%" in agreement.output


def test_reviewers_who_disagree_are_shown_it(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVALS_REQUIRED", "2")
    case_id = sampled_with_draft()
    run("--approve", str(case_id), "--as", "R1")  # keeps the bot's answer
    run("--draft", str(case_id), "--as", "R2")
    listed = run("--list")
    assert "Reviewers disagree (R1: the bot's answer; R2: the draft)" in listed.output


def test_the_draft_of_a_case_without_one_is_refused(env: Path) -> None:
    case_id = sampled_with_draft(draft=None)
    refused = run("--draft", str(case_id), "--as", "R1")
    assert refused.exit_code != 0 and "no draft" in refused.output
