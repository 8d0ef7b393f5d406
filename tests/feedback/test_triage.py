"""👎 triage on literal passages and corrections: a retrieval miss when what the person said was not
in the passages the model read, a generation miss when it was; stored with the correction and the
vote (both databases), counted per adapter version, and the retrieval misses grouped as
documentation gaps."""

from __future__ import annotations

from feedback import queries, store
from feedback.db import Database
from feedback.triage import GENERATION, RETRIEVAL, classify, context_of, key_terms

PASSAGES = (
    "[1] Annual Leave > Allowance\nEveryone gets 26 days of paid annual leave a year, in all three offices."
)
PROMPT = [
    {"role": "system", "content": f"Answer only from the documents.\n\nDocuments:\n{PASSAGES}"},
    {"role": "user", "content": "How much leave do I get?"},
]
NOTHING = [
    {"role": "system", "content": "Answer only from the documents.\n\nDocuments:\n(no documents matched)"},
    {"role": "user", "content": "Can I bring my dog?"},
]


def test_the_key_is_what_the_correction_adds_numbers_first() -> None:
    assert key_terms("It is 26 days, not 20.", question="How much leave?", answer="You get 20 days.") == [
        "26"
    ]
    assert key_terms("Ask the Lisbon office manager.", question="Who do I ask?", answer="Ask HR.") == [
        "lisbon",
        "office",
        "manager",
    ]
    assert key_terms("You get 20 days.", question="Leave?", answer="You get 20 days.") == []


def test_an_answer_that_was_in_the_passages_is_a_generation_miss() -> None:
    context = context_of(PROMPT)
    assert context == PASSAGES
    assert classify(
        "It is 26 days a year.", question="How much leave?", answer="20 days.", context=context
    ) == (GENERATION)


def test_an_answer_the_passages_lacked_is_a_retrieval_miss() -> None:
    context = context_of(PROMPT)
    said = "Part-time staff get 13 days."
    assert classify(said, question="How much leave?", answer="26 days.", context=context) == RETRIEVAL
    assert classify(
        "Dogs are welcome on Fridays.", question="Dog?", answer="No.", context=context_of(NOTHING)
    ) == (RETRIEVAL)
    assert context_of(NOTHING) is None and context_of(None) is None


def test_nothing_new_said_tells_nothing() -> None:
    assert classify("Wrong!", question="Leave?", answer="20 days.", context=PASSAGES) is None


def _answer(database: Database, *, adapter: str = "base", prompt: list[dict[str, str]] = PROMPT) -> int:
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text=prompt[-1]["content"], channel="C1")
        sources = (
            [{"id": "p1", "title": "Annual Leave > Allowance", "source": "leave.md"}]
            if prompt is PROMPT
            else []
        )
        answer = store.record_answer(
            s, question_id=q.id or 0, text="You get 20 days.", adapter=adapter, prompt=prompt, sources=sources
        )
        return answer.id or 0


def test_triage_is_stored_with_the_correction_and_the_vote(database: Database) -> None:
    generation, retrieval, bare = _answer(database), _answer(database), _answer(database)
    with database.writer() as s:
        store.record_vote(s, answer_id=generation, user_id="U2", value=-1, source="button")
        fix = store.submit_correction(s, answer_id=generation, author="U2", text="It is 26 days a year.")
        vote = store.record_vote(
            s, answer_id=retrieval, user_id="U3", value=-1, source="teams_feedback", comment="Interns get 13."
        )
        silent = store.record_vote(s, answer_id=bare, user_id="U4", value=-1, source="reaction")
        liked = store.record_vote(s, answer_id=bare, user_id="U5", value=1, source="button", comment="9 days")
    assert fix.triage == GENERATION
    assert (vote.triage, silent.triage, liked.triage) == (RETRIEVAL, None, None)
    with database.reader() as s:
        [author_vote] = queries.votes_for(s, generation)
    assert author_vote.triage == GENERATION  # the author's 👎 learnt why from their correction


def test_an_edit_on_approval_decides_the_triage(database: Database) -> None:
    answer_id = _answer(database)
    with database.writer() as s:
        fix = store.submit_correction(s, answer_id=answer_id, author="U2", text="Interns get 13 days.")
        assert fix.triage == RETRIEVAL
        approved = store.review_correction(
            s, correction_id=fix.id or 0, reviewer="R1", decision="approve", edited_text="It is 26 days."
        )
    assert approved.triage == GENERATION


def test_sampled_cases_count_only_when_the_bot_was_wrong(database: Database) -> None:
    right, wrong = _answer(database), _answer(database)
    with database.writer() as s:
        for answer_id, choice in ((right, "bot"), (wrong, "draft")):
            case = store.queue_answer(s, answer_id=answer_id, reasons=["low_confidence"], uncertainty=1.0)
            assert case is not None
            store.attach_draft(s, correction_id=case.id or 0, draft="It is 26 days.", model="teacher")
            store.review_correction(
                s, correction_id=case.id or 0, reviewer="R1", decision="approve", choice=choice
            )
    with database.reader() as s:
        misses = queries.misses(s)
    assert [(m.answer.id, m.triage) for m in misses] == [(wrong, GENERATION)]


def test_misses_per_adapter_and_documentation_gaps(database: Database) -> None:
    v1_gen, v1_ret, v2_ret, v2_unknown = (
        _answer(database, adapter="kb-v1"),
        _answer(database, adapter="kb-v1"),
        _answer(database, adapter="kb-v2"),
        _answer(database, adapter="kb-v2", prompt=NOTHING),
    )
    dog = _answer(database, adapter="kb-v2", prompt=NOTHING)
    with database.writer() as s:
        store.submit_correction(s, answer_id=v1_gen, author="U2", text="It is 26 days a year.")
        store.submit_correction(s, answer_id=v1_ret, author="U2", text="Interns get 13 days.")
        store.record_vote(
            s, answer_id=v2_ret, user_id="U3", value=-1, source="button", comment="Interns: 13 days"
        )
        store.record_vote(s, answer_id=v2_unknown, user_id="U3", value=-1, source="reaction")
        store.submit_correction(s, answer_id=dog, author="U4", text="Dogs are welcome on Fridays.")
        rejected = store.submit_correction(s, answer_id=v2_unknown, author="U5", text="Nonsense 99.")
        store.review_correction(
            s, correction_id=rejected.id or 0, reviewer="R1", decision="reject", reason="no"
        )
    with database.reader() as s:
        found = queries.misses(s)
    by_adapter = dict(queries.misses_by_adapter(found))
    gaps = queries.documentation_gaps(found)
    assert by_adapter == {
        "kb-v1": {"retrieval": 1, "generation": 1, "unknown": 0},
        "kb-v2": {"retrieval": 2, "generation": 0, "unknown": 1},
    }
    assert gaps == [
        ("Annual Leave > Allowance", ["How much leave do I get?"]),
        ("nothing retrieved", ["Can I bring my dog?"]),
    ]
