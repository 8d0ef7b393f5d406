"""The grounding check: one yes/no token before the answer, and the refusal where the model says
its passages do not answer the question (fake model server behind httpx.MockTransport, the real
store on SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from dataclasses import replace

import httpx
import pytest

from bot import grounding
from bot.knowledge.index import Passage
from bot.pipeline import Answer, Delta, Pipeline, Question
from feedback.db import Database
from feedback.models import Answer as AnswerRow
from model_server.client import AsyncModelClient
from tests.support.fakes import FakeModel, FakeRetriever

PAYROLL = Passage(
    "p1", "Payroll > Payslips", "hr/payroll.md", None, "Payslips are in Meadow on the 25th.", 1.0, 0.0
)


def _pipeline(database: Database, model: FakeModel, threshold: float, passage: Passage = PAYROLL) -> Pipeline:
    client = AsyncModelClient("http://model", transport=httpx.MockTransport(model), retries=0)
    return Pipeline(
        retriever=FakeRetriever([passage]),
        client=client,
        model_name=lambda: "kb-v2",
        database=database,
        grounding_threshold=threshold,
    )


@pytest.mark.parametrize(
    ("alternatives", "share"),
    [
        ({"Yes": math.log(0.6), "No": math.log(0.2), "Maybe": math.log(0.2)}, 0.75),
        ({" yes": math.log(0.3), "yes": math.log(0.3), " No.": math.log(0.2)}, 0.75),
        ({"no": 0.0}, 0.0),
        ({"Perhaps": 0.0, "The": -1.0}, None),
        ({}, None),
    ],
)
def test_yes_share_reads_both_words_in_any_spelling(
    alternatives: dict[str, float], share: float | None
) -> None:
    found = grounding.yes_share(alternatives)
    assert found == (pytest.approx(share) if share is not None else None)


def test_the_check_keeps_the_served_prompt_as_its_prefix() -> None:
    served = [{"role": "system", "content": "Documents: ..."}, {"role": "user", "content": "Pension?"}]
    check = grounding.check_messages(served)
    assert check[0] == served[0]
    assert check[1]["role"] == "user" and check[1]["content"].startswith("Pension?\n\n")
    assert check[1]["content"].endswith(grounding.CHECK)
    assert served[1]["content"] == "Pension?"  # the served prompt is left as it was


async def test_a_no_from_the_check_gives_the_refusal_and_records_the_prompt(database: Database) -> None:
    model = FakeModel("Your pension is paid with your salary.")
    model.yes = 0.2
    answer = await _pipeline(database, model, 0.5).answer(Question("How does the pension scheme work?"))

    assert "couldn't find that in the company documents" in answer.text
    assert not answer.covered and answer.sources == [] and answer.confidence is None
    assert len(model.requests) == 1  # the check alone; no answer was written
    check = model.requests[0]
    assert (check["max_tokens"], check["top_logprobs"], check["model"]) == (1, 10, "kb-v2")
    assert check["messages"][-1]["content"].endswith(grounding.CHECK)
    with database.reader() as s:
        row = s.get(AnswerRow, answer.answer_id)
        assert row is not None and row.text == answer.text
        assert "Payslips are in Meadow" in row.prompt[0]["content"]  # reviewers see what it had


async def test_a_yes_from_the_check_gets_the_answer_from_the_prompt_as_served(database: Database) -> None:
    model = FakeModel("Payslips are in Meadow on the 25th.")
    model.yes = 0.8
    answer = await _pipeline(database, model, 0.5).answer(Question("Where are my payslips?"))

    assert answer.text == "Payslips are in Meadow on the 25th." and answer.covered
    assert [r.get("top_logprobs") for r in model.requests] == [10, None]
    assert model.requests[1]["messages"][-1]["content"] == "Where are my payslips?"


async def test_no_check_is_asked_at_threshold_zero(database: Database) -> None:
    model = FakeModel("Payslips are in Meadow on the 25th.")
    model.yes = 0.0
    answer = await _pipeline(database, model, 0.0).answer(Question("Where are my payslips?"))
    assert answer.covered and len(model.requests) == 1 and "top_logprobs" not in model.requests[0]


async def test_a_streamed_answer_refused_by_the_check_comes_in_one_piece(database: Database) -> None:
    model = FakeModel("Your pension is paid with your salary.")
    model.yes = 0.1
    items = [
        item async for item in _pipeline(database, model, 0.5).answer_stream(Question("Pension scheme?"))
    ]

    *deltas, answer = items
    assert isinstance(answer, Answer) and not answer.covered
    assert [d.text for d in deltas if isinstance(d, Delta)] == [answer.text]
    assert "couldn't find that" in answer.text
    assert len(model.requests) == 1 and not model.requests[0].get("stream")


def test_the_score_adds_the_closest_passages_similarity() -> None:
    assert grounding.score(0.25, [0.3, 0.55]) == pytest.approx(0.8)
    assert grounding.score(None, [0.55]) is None
    assert grounding.score(0.9, []) is None


@pytest.mark.parametrize(("similarity", "answered"), [(0.6, True), (0.3, False)])
async def test_a_passage_on_the_neighbouring_topic_tips_a_lukewarm_yes_into_the_refusal(
    database: Database, similarity: float, answered: bool
) -> None:
    model = FakeModel("Payslips are in Meadow on the 25th.")
    model.yes = 0.4
    passage = replace(PAYROLL, similarity=similarity)
    answer = await _pipeline(database, model, 0.8, passage).answer(Question("Where are my payslips?"))

    assert answer.covered is answered
    assert len(model.requests) == (2 if answered else 1)
