"""Training data from literal store rows: what becomes an example, what is dropped and why,
and each export format read back field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedback import store
from feedback.db import Database
from retrain.dataset import Seed, build_dataset, stable_split
from retrain.export import export
from retrain.pii import Scrubber

SYSTEM = {
    "role": "system",
    "content": "Answer only from the documents.\n\nDocuments:\n[1] Leave\n27 days a year.",
}


def served(question: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": question}]


def _answer(db: Database, question: str, text: str, user: str = "U1", passages: str = "") -> int:
    """`passages`: more than SYSTEM's in what the model was served."""
    prompt = served(question)
    if passages:
        prompt = [{"role": "system", "content": f"{SYSTEM['content']}\n\n[2] More\n{passages}"}, prompt[1]]
    with db.writer() as s:
        q = store.record_question(s, platform="slack", user_id=user, text=question)
        a = store.record_answer(s, question_id=q.id, text=text, adapter="base", prompt=prompt)
        assert a.id is not None
        return a.id


def _build(db: Database, seeds: list[Seed] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    with db.reader() as s:
        return build_dataset(
            s,
            seeds=seeds or [],
            prompt_for=served,
            scrubber=Scrubber.from_corpus(["Call the desk on +31 10 555 0100."]),
            count_tokens=lambda text: len(text.split()),
            **kw,  # type: ignore[arg-type]
        )


def test_examples_come_from_corrections_votes_and_seeds(database: Database) -> None:
    corrected = _answer(database, "How many leave days?", "You get 20 days.")
    liked = _answer(database, "Who runs payroll?", "Payroll is run by the Finance Ops team.")
    disliked = _answer(database, "Where is the VPN guide?", "I do not know.")
    pending = _answer(database, "Parking in Lisbon?", "There is no parking.")
    with database.writer() as s:
        c = store.submit_correction(s, answer_id=corrected, author="U2", text="You get 27 days a year.")
        store.review_correction(s, correction_id=c.id, reviewer="R1", decision="approve")
        store.record_vote(s, answer_id=liked, user_id="U3", value=1, source="button")
        store.record_vote(s, answer_id=disliked, user_id="U3", value=-1, source="reaction")
        store.record_vote(s, answer_id=pending, user_id="U3", value=1, source="button")
        store.submit_correction(
            s, answer_id=pending, author="U4", text="Garage P2 has 40 spaces."
        )  # still open
    seeds = [
        Seed("benefits-001", "How many leave days?", "27 days.", "train"),
        Seed("it-004", "VPN client?", "Tunnelbird.", "validation"),
        Seed("it-009", "Wi-Fi name?", "Larkspur-Staff.", "test"),  # never training data
    ]
    dataset = _build(database, seeds)
    by_id = {e.id: e for e in dataset.examples}

    correction = by_id[f"correction:{c.id}"]
    assert (correction.kind, correction.completion, correction.rejected) == (
        "correction",
        "You get 27 days a year.",
        "You get 20 days.",
    )
    assert correction.prompt == served("How many leave days?")  # the conversation as it was served
    assert correction.split == "train"  # never held out: a held-out correction would not be learnt
    assert by_id[f"answer:{liked}"].label is True and by_id[f"answer:{disliked}"].label is False
    assert f"answer:{corrected}" not in by_id and f"answer:{pending}" not in by_id
    assert by_id["sample:it-004"].split == "validation" and "sample:it-009" not in by_id
    assert by_id["sample:benefits-001"].split == "train"
    assert by_id[f"answer:{liked}"].split == stable_split(f"answer:{liked}", 0.1)
    assert dataset.feedback_range == {"first_answer_id": corrected, "last_answer_id": disliked}
    assert all(e.label for e in dataset.split("train"))
    assert len(dataset.hash) == 16 and dataset.hash == _build(database, seeds).hash  # stable


def test_opt_outs_duplicates_and_long_examples_are_dropped(database: Database) -> None:
    kept = _answer(database, "Who runs payroll?", "Finance Ops.", user="U1")
    twin = _answer(database, "who runs  PAYROLL?", "Finance Ops.", user="U5")
    private = _answer(database, "What is my bonus?", "Ask HR.", user="U-private")
    by_setting = _answer(database, "Lunch budget?", "EUR 15.", user="U-setting")
    long = _answer(database, "Explain everything " + "please " * 300, "Sure.", user="U1")
    with database.writer() as s:
        for answer_id in (kept, twin, private, by_setting, long):
            store.record_vote(s, answer_id=answer_id, user_id="U9", value=1, source="button")
        store.opt_out(s, user_id="U-private")
    dataset = _build(database, opted_out=["U-setting"], max_tokens=200)
    assert [e.id for e in dataset.examples] == [f"answer:{kept}"]
    assert dataset.dropped == {"opted_out": 2, "duplicate": 1, "too_long": 1}


def test_each_correction_gets_a_grounded_twin_with_the_passages_of_its_answer(database: Database) -> None:
    leave = _answer(database, "How many leave days?", "You get 20 days.")
    lunch = _answer(database, "Lunch budget?", "EUR 10.")
    liked = _answer(database, "Who runs payroll?", "Finance Ops.")
    with database.writer() as s:
        fixes = [
            store.submit_correction(s, answer_id=leave, author="U2", text="You get 27 days a year."),
            store.submit_correction(s, answer_id=lunch, author="U2", text="EUR 15 a day."),
        ]
        for fix in fixes:
            store.review_correction(s, correction_id=fix.id, reviewer="R1", decision="approve")
        store.record_vote(s, answer_id=liked, user_id="U3", value=1, source="button")
    asked: list[tuple[str, str]] = []

    def grounded(question: str, answer: str) -> list[dict[str, str]]:
        asked.append((question, answer))
        if question == "Lunch budget?":  # retrieval found what was served: no twin
            return served(question)
        passage = {"role": "system", "content": f"Documents:\n[1] Leave\n{answer}"}
        return [passage, {"role": "user", "content": question}]

    dataset = _build(database, grounded_prompt_for=grounded)
    by_id = {e.id: e for e in dataset.examples}
    leave_fix, lunch_fix = (fix.id for fix in fixes)

    assert asked == [("How many leave days?", "You get 27 days a year."), ("Lunch budget?", "EUR 15 a day.")]
    twin = by_id[f"grounded:{leave_fix}"]
    assert (twin.kind, twin.completion, twin.rejected, twin.split) == (
        "grounded",
        "You get 27 days a year.",
        None,
        "train",
    )
    assert twin.prompt[0]["content"].endswith("You get 27 days a year.")
    assert by_id[f"correction:{leave_fix}"].prompt == served("How many leave days?")  # kept as served
    assert f"grounded:{lunch_fix}" not in by_id
    # the served passages never said 15: a retrieval miss, not taught as served
    assert f"correction:{lunch_fix}" not in by_id
    assert dataset.dropped == {"grounded_as_served": 1, "retrieval_miss": 1}
    assert [e.kind for e in dataset.examples].count("grounded") == 1  # votes get no twin
    assert not any(e.kind == "grounded" for e in _build(database).examples)  # no builder, no twins


def test_personal_data_is_scrubbed_before_anything_is_written(database: Database, tmp_path: Path) -> None:
    answer_id = _answer(
        database, "My number is +44 20 7946 0958, call me?", "Call the desk on +31 10 555 0100."
    )
    with database.writer() as s:
        store.record_vote(s, answer_id=answer_id, user_id="U9", value=1, source="button")
    dataset = _build(database)
    dataset.write_jsonl(tmp_path / "data.jsonl")
    written = (tmp_path / "data.jsonl").read_text()
    assert "7946" not in written and "[PHONE]" in written
    assert "+31 10 555 0100" in written  # the company's published number stays
    assert dataset.scrubbed["PHONE"] == 1


@pytest.fixture
def mixed(database: Database):  # type: ignore[no-untyped-def]
    corrected = _answer(database, "How many leave days?", "You get 20 days.")
    liked = _answer(database, "Who runs payroll?", "Finance Ops.")
    disliked = _answer(database, "VPN guide?", "No idea.")
    with database.writer() as s:
        c = store.submit_correction(s, answer_id=corrected, author="U2", text="27 days a year.")
        store.review_correction(s, correction_id=c.id, reviewer="R1", decision="approve")
        store.record_vote(s, answer_id=liked, user_id="U3", value=1, source="button")
        store.record_vote(s, answer_id=disliked, user_id="U3", value=-1, source="button")
    return _build(database)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_chat_export(mixed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = export(mixed.examples, "openai-chat", tmp_path / "chat.jsonl")
    lines = _lines(tmp_path / "chat.jsonl")
    assert report.written == len(lines) == 2 and report.dropped == {"not applicable to openai-chat": 1}
    for line in lines:
        roles = [m["role"] for m in line["messages"]]
        assert roles == ["system", "user", "assistant"]
    assert {line["messages"][-1]["content"] for line in lines} == {"27 days a year.", "Finance Ops."}


def test_kto_export(mixed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    export(mixed.examples, "kto", tmp_path / "kto.jsonl")
    lines = _lines(tmp_path / "kto.jsonl")
    labels = {line["completion"][0]["content"]: line["label"] for line in lines}
    assert labels == {"27 days a year.": True, "Finance Ops.": True, "No idea.": False}
    for line in lines:
        assert line["prompt"][-1]["role"] == "user" and line["completion"][0]["role"] == "assistant"


def test_dpo_export(mixed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = export(mixed.examples, "dpo", tmp_path / "dpo.jsonl")
    [line] = _lines(tmp_path / "dpo.jsonl")
    assert line["prompt"] == served("How many leave days?")
    assert line["chosen"] == [{"role": "assistant", "content": "27 days a year."}]
    assert line["rejected"] == [{"role": "assistant", "content": "You get 20 days."}]
    assert report.dropped == {"not applicable to dpo": 2}


def test_invalid_lines_are_counted_not_written(tmp_path: Path) -> None:
    from retrain.dataset import Example

    bad = [
        Example("a", "liked", [{"role": "user", "content": "Q?"}], "   "),
        Example("b", "liked", [{"role": "robot", "content": "Q?"}], "A."),
        Example("c", "correction", [{"role": "user", "content": "Q?"}], "Same.", rejected="Same."),
    ]
    assert export(bad, "openai-chat", tmp_path / "x.jsonl").dropped == {"empty content": 1, "bad role": 1}
    assert export(bad, "dpo", tmp_path / "y.jsonl").dropped["chosen equals rejected"] == 1
    with pytest.raises(ValueError, match="Unknown format"):
        export(bad, "csv", tmp_path / "z.jsonl")


def test_reviewed_sampled_answers_join_with_their_provenance(database: Database, tmp_path: Path) -> None:
    confirmed = _answer(database, "How many leave days?", "You get 27 days a year.")
    drafted = _answer(database, "Who runs payroll?", "Ask HR.", passages="Finance Ops runs payroll.")
    corrected = _answer(database, "Where is the VPN guide?", "I do not know.", passages="IT wiki: VPN.")
    with database.writer() as s:
        c = store.submit_correction(s, answer_id=corrected, author="U2", text="In the IT wiki, under VPN.")
        store.review_correction(s, correction_id=c.id or 0, reviewer="R1", decision="approve")
        a = store.queue_answer(s, answer_id=confirmed, reasons=["low_confidence"], uncertainty=1.0)
        b = store.queue_answer(s, answer_id=drafted, reasons=["low_confidence"], uncertainty=1.0)
        assert a is not None and b is not None
        store.attach_draft(s, correction_id=b.id or 0, draft="Finance Ops runs payroll.", model="teacher")
        store.review_correction(s, correction_id=a.id or 0, reviewer="R1", decision="approve", choice="bot")
        store.review_correction(s, correction_id=b.id or 0, reviewer="R1", decision="approve", choice="draft")
    examples = {e.provenance: e for e in _build(database).examples if e.kind == "correction"}

    assert set(examples) == {"user_correction", "reviewer_confirmed", "teacher_draft"}
    assert examples["reviewer_confirmed"].completion == "You get 27 days a year."
    assert examples["reviewer_confirmed"].rejected is None  # confirmed, nothing it replaced
    assert (examples["teacher_draft"].completion, examples["teacher_draft"].rejected) == (
        "Finance Ops runs payroll.",
        "Ask HR.",
    )
    out = tmp_path / "kto.jsonl"
    export(examples.values(), "kto", out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["metadata"]["provenance"] for line in lines) == sorted(examples)
    dpo = tmp_path / "dpo.jsonl"
    assert export(examples.values(), "dpo", dpo).written == 2  # a confirmed answer is no preference pair


def test_a_sampled_answer_two_reviewers_keep_the_draft_of_is_trained_and_gated(database: Database) -> None:
    """Issue #14's path: an answer nobody voted on, queued, drafted; two reviewers keep the draft; the
    next dataset trains on it (a teacher draft) and the gate asks the candidate that question."""
    from bot.review.desk import ReviewDesk, ReviewPolicy
    from bot.review.sampler import Sampler
    from retrain.gate import GateConfig, GateSet

    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="Who runs payroll?")
        prompt = [{"role": "system", "content": "Documents:\n[1] Payroll\nFinance Ops runs payroll."}]
        prompt.append({"role": "user", "content": "Who runs payroll?"})
        store.record_answer(
            s, question_id=q.id, text="Ask HR.", adapter="base", prompt=prompt, confidence=0.2
        )
    [case_id] = Sampler(database, daily_budget=1).run()
    with database.writer() as s:
        store.attach_draft(s, correction_id=case_id, draft="Finance Ops runs payroll.", model="teacher")
    desk = ReviewDesk(database, ReviewPolicy.of(reviewers=["R1", "R2"], approvals_required=2, recall=False))
    assert not desk.decide(case_id, reviewer="R1", decision="approve", choice="draft").decided
    assert desk.decide(case_id, reviewer="R2", decision="approve", choice="draft").decided

    dataset = _build(database)
    [example] = [e for e in dataset.examples if e.kind == "correction"]
    assert (example.provenance, example.completion, example.rejected) == (
        "teacher_draft",
        "Finance Ops runs payroll.",
        "Ask HR.",
    )
    gated = GateSet.from_dataset(dataset, GateConfig())
    assert [e.prompt[-1]["content"] for e in gated.corrections] == ["Who runs payroll?"]
