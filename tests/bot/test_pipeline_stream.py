"""`Pipeline.answer_stream`: the text as the model writes it, then the same recorded answer as
`Pipeline.answer` gives, on a fake model server speaking vLLM's stream (httpx.MockTransport) and
the real store (SQLite, and PostgreSQL where TEST_POSTGRES_URL points)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from bot.errors import AnswerUnavailable, EmptyQuestion
from bot.pipeline import Answer, Delta, Pipeline, Question
from feedback.db import Database
from feedback.models import Answer as AnswerRow
from feedback.models import Question as QuestionRow
from model_server.client import AsyncModelClient
from tests.support.fakes import PASSAGES, FakeModel, FakePassage, FakeRetriever

LEAVE = "How many days of leave do I get?"


def _pipeline(database: Database, model: FakeModel, passages: list[FakePassage] = PASSAGES) -> Pipeline:
    client = AsyncModelClient("http://model", transport=httpx.MockTransport(model), retries=0)
    return Pipeline(
        retriever=FakeRetriever(passages), client=client, model_name=lambda: "kb-v3", database=database
    )


async def _collect(pipeline: Pipeline, question: Question) -> tuple[list[str], Answer]:
    deltas: list[str] = []
    answers: list[Answer] = []
    async for item in pipeline.answer_stream(question):
        if isinstance(item, Delta):
            assert not answers, "a delta after the answer"
            deltas.append(item.text)
        else:
            answers.append(item)
    [answer] = answers
    return deltas, answer


def _rows(database: Database) -> tuple[list[QuestionRow], list[AnswerRow]]:
    with database.reader() as s:
        return list(s.exec(select(QuestionRow))), list(s.exec(select(AnswerRow)))


async def test_deltas_add_up_to_the_answer_recorded_like_answers(database: Database) -> None:
    model = FakeModel("  You get 27 days of leave a year.\n")  # the model's white space is trimmed
    model.logprobs = [-0.5, -0.1, -0.3]
    pipeline = _pipeline(database, model)
    deltas, streamed = await _collect(pipeline, Question(LEAVE, platform="web", user_id="alice"))

    assert len(deltas) >= 5 and "".join(deltas) == streamed.text == "You get 27 days of leave a year."
    request = model.requests[0]
    assert request["stream"] is True and request["logprobs"] is True
    assert request["model"] == "kb-v3" and request["max_tokens"] == pipeline.max_answer_tokens
    assert streamed.confidence == pytest.approx(0.7408, abs=1e-3)  # exp(mean(-0.5, -0.1, -0.3))
    assert streamed.covered and streamed.adapter == "kb-v3"
    assert [s.passage_id for s in streamed.sources] == ["leave-1", "leave-2"]
    assert set(streamed.timings) == {"retrieve_ms", "generate_ms", "total_ms"}

    # the same question answered in one piece gives the same answer and the same kind of rows
    whole = await pipeline.answer(Question(LEAVE, platform="web", user_id="alice"))
    assert (whole.text, whole.confidence, whole.sources) == (
        streamed.text,
        streamed.confidence,
        streamed.sources,
    )
    questions, rows = _rows(database)
    assert [q.id for q in questions] == [streamed.question_id, whole.question_id]
    by_id = {r.id: r for r in rows}
    s_row, w_row = by_id[streamed.answer_id], by_id[whole.answer_id]
    for field in ("text", "adapter", "passage_ids", "sources", "prompt", "confidence", "platform"):
        assert getattr(s_row, field) == getattr(w_row, field), field
    assert s_row.confidence == streamed.confidence and s_row.question_id == streamed.question_id
    assert s_row.prompt == request["messages"]  # the conversation exactly as served


async def test_an_uncovered_question_streams_the_refusal_without_the_model(database: Database) -> None:
    model = FakeModel()
    deltas, answer = await _collect(_pipeline(database, model, passages=[]), Question("Capital of Peru?"))
    assert model.requests == []
    assert not answer.covered and answer.sources == [] and answer.confidence is None
    assert deltas == [answer.text] and "couldn't find that in the company documents" in answer.text
    _, [row] = _rows(database)
    assert row.id == answer.answer_id and row.prompt == [] and row.passage_ids == []


async def test_the_model_server_down_is_unavailable_and_the_question_kept(database: Database) -> None:
    model = FakeModel()
    model.down = True
    seen: list[object] = []
    pipeline = _pipeline(database, model)
    pipeline.observers.append(lambda q, a, s: seen.append(a))
    with pytest.raises(AnswerUnavailable) as raised:
        await _collect(pipeline, Question(LEAVE, user_id="U7"))
    assert "can't reach my language model" in raised.value.user_message
    questions, answers = _rows(database)
    assert [(q.id, q.user_id) for q in questions] == [(raised.value.question_id, "U7")]
    assert answers == [] and seen == [None]  # metrics count it as unanswered


async def test_a_stream_broken_midway_records_no_half_answer(database: Database) -> None:
    model = FakeModel()
    model.fail_after = 3  # vLLM's error event after three words
    pipeline = _pipeline(database, model)
    deltas: list[str] = []
    with pytest.raises(AnswerUnavailable) as raised:
        async for item in pipeline.answer_stream(Question(LEAVE)):
            assert isinstance(item, Delta)
            deltas.append(item.text)
    assert "".join(deltas) == "You get 27"
    questions, answers = _rows(database)
    assert [q.id for q in questions] == [raised.value.question_id] and answers == []


async def test_an_empty_question_is_refused_before_anything_is_recorded(database: Database) -> None:
    with pytest.raises(EmptyQuestion):
        await _collect(_pipeline(database, FakeModel()), Question("  "))
    assert _rows(database) == ([], [])
