"""The answer pipeline with a fake retriever and a fake model server (a handler function behind
httpx.MockTransport), recording into the real store (SQLite, and PostgreSQL where TEST_POSTGRES_URL
points)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from bot.errors import AnswerUnavailable, EmptyQuestion
from bot.pipeline import Pipeline, Question
from bot.prompts import Turn, approx_tokens, build_messages
from feedback.db import Database
from feedback.models import Answer
from feedback.models import Question as QuestionRow
from model_server.client import AsyncModelClient
from tests.support.fakes import FakeModel, FakePassage, FakeRetriever

LEAVE = FakePassage(
    "c1", "Annual Leave > Allowance", "Everyone gets 27 days of leave a year.", "benefits/leave.md"
)
CARRY = FakePassage(
    "c2", "Annual Leave > Carrying over", "Up to 5 days carry over to March 31.", "benefits/leave.md"
)
VPN = FakePassage(
    "c3", "VPN > Installing", "Install Tunnelbird from the portal.", "it/vpn.md", "https://wiki/vpn"
)


def answering_model(*, down: bool = False) -> FakeModel:
    model = FakeModel()
    model.logprobs = [-0.5, -0.1]
    model.down = down
    return model


def _pipeline(retriever: FakeRetriever, model: FakeModel, database: Database, **kw: object) -> Pipeline:
    client = AsyncModelClient("http://model", transport=httpx.MockTransport(model), retries=0)
    return Pipeline(retriever=retriever, client=client, model_name=lambda: "kb-v3", database=database, **kw)  # type: ignore[arg-type]


async def test_answer_carries_sources_adapter_confidence_and_is_recorded(database: Database) -> None:
    model = answering_model()
    pipeline = _pipeline(FakeRetriever([LEAVE, CARRY, VPN]), model, database)
    answer = await pipeline.answer(
        Question("How many days of leave do I get?", platform="slack", user_id="U1")
    )

    assert answer.text == "You get 27 days of leave a year."
    assert answer.adapter == "kb-v3" and model.requests[0]["model"] == "kb-v3"
    assert [s.title for s in answer.sources] == [LEAVE.title, CARRY.title, VPN.title]
    assert answer.sources[2].url == "https://wiki/vpn"
    assert answer.confidence == pytest.approx(0.7408, abs=1e-3)  # exp(mean(-0.5, -0.1))
    assert answer.covered and set(answer.timings) == {"retrieve_ms", "generate_ms", "total_ms"}
    system = model.requests[0]["messages"][0]["content"]
    assert "only the documents below" in system and "27 days of leave" in system
    with database.reader() as s:
        row = s.get(Answer, answer.answer_id)
        assert row is not None
        assert (row.adapter, row.passage_ids, row.platform) == ("kb-v3", ["c1", "c2", "c3"], "slack")
        assert row.prompt == model.requests[0]["messages"]  # the conversation exactly as served


async def test_empty_question_is_refused_and_nothing_recorded(database: Database) -> None:
    pipeline = _pipeline(FakeRetriever([LEAVE]), answering_model(), database)
    with pytest.raises(EmptyQuestion):
        await pipeline.answer(Question("   "))
    with database.reader() as s:
        assert s.exec(select(QuestionRow)).all() == []


async def test_uncovered_question_gets_the_refusal_without_the_model(database: Database) -> None:
    model = answering_model()
    answer = await _pipeline(FakeRetriever([]), model, database).answer(
        Question("What's the capital of Peru?")
    )
    assert not answer.covered and answer.sources == []
    assert "couldn't find that in the company documents" in answer.text
    assert model.requests == []
    with database.reader() as s:
        assert s.get(Answer, answer.answer_id) is not None


async def test_model_server_down_still_records_the_question(database: Database) -> None:
    pipeline = _pipeline(FakeRetriever([LEAVE]), answering_model(down=True), database)
    with pytest.raises(AnswerUnavailable) as raised:
        await pipeline.answer(Question("How many days of leave?", user_id="U7"))
    assert "can't reach my language model" in raised.value.user_message
    with database.reader() as s:
        rows = s.exec(select(QuestionRow)).all()
        assert [(q.id, q.user_id) for q in rows] == [(raised.value.question_id, "U7")]
        assert s.exec(select(Answer)).all() == []


def test_passages_and_history_are_fitted_to_the_budget() -> None:
    long_passage = FakePassage("c9", "Huge", "word " * 2000, "x.md")
    history = [Turn("user", f"earlier question {i} " * 20) for i in range(30)]
    messages, used = build_messages(
        "And in Lisbon?", [LEAVE, long_passage, VPN], history=history, budget=600, count=approx_tokens
    )
    assert [p.id for p in used] == ["c1", "c3"]  # rank order; the huge one is skipped
    total = sum(approx_tokens(m["content"]) for m in messages)
    assert total <= 600
    assert messages[-1] == {"role": "user", "content": "And in Lisbon?"}
    kept = [m["content"] for m in messages[1:-1]]
    assert kept and kept[-1].startswith("earlier question 29")  # the most recent turns survive
    assert len(kept) < len(history)


async def test_history_reaches_the_model_in_order(database: Database) -> None:
    model = answering_model()
    history = [Turn("user", "How many days of leave?"), Turn("assistant", "27 days.")]
    await _pipeline(FakeRetriever([LEAVE]), model, database).answer(
        Question("Can I carry them over?"), history
    )
    roles = [(m["role"], m["content"]) for m in model.requests[0]["messages"][1:]]
    assert roles == [
        ("user", "How many days of leave?"),
        ("assistant", "27 days."),
        ("user", "Can I carry them over?"),
    ]
