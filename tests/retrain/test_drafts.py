"""Teacher drafts for sampled review cases: asked with the prompt the bot was served, stored beside
the case, marked when the teacher disagrees, bounded per run, and a teacher that fails costs only an
attempt (a fake OpenAI-compatible server behind httpx.MockTransport; the store on both databases)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.review.sampler import Sampler
from feedback import store
from feedback.db import Database
from feedback.models import Correction
from model_server import catalog
from model_server.client import ModelClient
from model_server.prepare import model_dir_for
from retrain.drafts import (
    DRAFT_LIMIT,
    MAX_ATTEMPTS,
    Message,
    Teacher,
    cut,
    default_teacher,
    draft_pending,
    local_teacher,
)
from tests.support.fakes import FakeModel

PROMPT = [
    {"role": "system", "content": "Documents: leave is 26 days."},
    {"role": "user", "content": "Leave?"},
]


def sampled(db: Database, answer: str, *, n: int = 1) -> list[int]:
    for i in range(n):
        with db.writer() as session:
            question = store.record_question(session, platform="slack", user_id=f"U{i}", text=f"Leave {i}?")
            store.record_answer(
                session,
                question_id=question.id or 0,
                text=answer,
                adapter="base",
                confidence=0.3,
                prompt=PROMPT,
            )
    return Sampler(db, daily_budget=n).run()


def teacher(model: FakeModel) -> Teacher:
    return Teacher(
        ModelClient("http://teacher", retries=0, transport=httpx.MockTransport(model)), "big-model"
    )


def cases(db: Database) -> list[Correction]:
    with db.reader() as session:
        return list(session.exec(select(Correction).order_by(Correction.id)))


def test_the_teacher_drafts_from_the_served_prompt_and_its_disagreement_is_marked(database: Database) -> None:
    [case_id] = sampled(database, "Ask your manager about it.")
    model = FakeModel("You get 26 days of paid leave a year.")
    assert draft_pending(database, teacher(model)) == [case_id]
    [case] = cases(database)
    assert (case.draft, case.draft_model) == ("You get 26 days of paid leave a year.", "big-model")
    assert "teacher_disagrees" in case.reasons and case.drafted_at is not None
    assert model.requests[0]["messages"] == PROMPT and model.requests[0]["model"] == "big-model"
    assert draft_pending(database, teacher(model)) == []  # drafted once


def test_a_teacher_that_agrees_is_not_marked(database: Database) -> None:
    sampled(database, "You get 26 days of paid leave a year.")
    draft_pending(database, teacher(FakeModel("You get 26 days of paid leave a year.")))
    assert "teacher_disagrees" not in cases(database)[0].reasons


def test_a_teacher_that_is_down_costs_an_attempt_and_is_tried_again_until_the_limit(
    database: Database,
) -> None:
    sampled(database, "You get 20 days.")
    model = FakeModel()
    model.down = True
    for _ in range(MAX_ATTEMPTS + 1):
        assert draft_pending(database, teacher(model)) == []
    [case] = cases(database)
    assert case.draft is None and case.draft_attempts == MAX_ATTEMPTS and case.status == "pending"
    assert len(model.requests) == MAX_ATTEMPTS  # then left to reviewers without a draft


def test_a_case_deleted_by_a_privacy_request_while_drafted_is_dropped_and_the_run_goes_on(
    database: Database,
) -> None:
    sampled(database, "You get 20 days.", n=2)  # asked by U0 and U1
    forgotten: list[str] = []

    class Forgetful(Teacher):
        def draft(self, prompt: Sequence[Message]) -> str:
            if not forgotten:  # U0 is forgotten while the teacher writes the run's first draft
                with database.writer() as session:
                    store.forget_person(session, user_id="U0")
                forgotten.append("U0")
            return super().draft(prompt)

    model = FakeModel("You get 26 days.")
    drafted = draft_pending(database, Forgetful(teacher(model).client, "big-model"))
    assert len(drafted) == 1 and len(model.requests) == 2
    [left] = cases(database)
    assert left.id == drafted[0] and left.draft == "You get 26 days."


def test_each_run_is_bounded_in_count_and_time(database: Database) -> None:
    sampled(database, "You get 20 days.", n=4)
    model = FakeModel("You get 26 days.")
    assert len(draft_pending(database, teacher(model), max_cases=2)) == 2
    ticks = iter([0.0, 0.0, 100.0, 100.0])
    assert len(draft_pending(database, teacher(model), seconds=50, clock=lambda: next(ticks))) == 1
    assert sum(c.draft is not None for c in cases(database)) == 3


def test_a_long_draft_is_cut_at_a_word() -> None:
    long = "word " * 1000
    assert len(cut(long)) <= DRAFT_LIMIT and cut(long).endswith("word…")
    assert cut("  short  ") == "short"


def _prepared(data_dir: Path, name: str) -> None:
    entry = catalog.lookup(name)
    folder = model_dir_for(data_dir, name)
    folder.mkdir(parents=True)
    (folder / "prepared.json").write_text(json.dumps({"source": f"catalog:{entry.name}:{entry.sha256}"}))


def test_the_default_teacher_is_the_largest_prepared_model_larger_than_the_served_one(tmp_path: Path) -> None:
    assert default_teacher(tmp_path, "smollm2-135m-instruct") is None  # nothing larger prepared
    _prepared(tmp_path, "smollm2-135m-instruct")
    _prepared(tmp_path, "qwen2.5-coder-0.5b-instruct")
    assert default_teacher(tmp_path, "smollm2-135m-instruct") == model_dir_for(
        tmp_path, "qwen2.5-coder-0.5b-instruct"
    )
    _prepared(tmp_path, "qwen2.5-coder-1.5b-instruct")
    assert default_teacher(tmp_path, "smollm2-135m-instruct") == model_dir_for(
        tmp_path, "qwen2.5-coder-1.5b-instruct"
    )
    assert default_teacher(tmp_path, "qwen2.5-coder-1.5b-instruct") is None  # the largest serves: off
    assert default_teacher(tmp_path, str(tmp_path)) is None  # outside the catalog: set TEACHER_URL


@pytest.mark.slow
def test_a_local_teacher_drafts_on_a_server_of_its_own_and_stops_it(
    database: Database, base_model_dir: Path, tmp_path: Path
) -> None:
    sampled(database, "Ask your manager about it.")
    log_path = tmp_path / "logs" / "teacher.log"
    with local_teacher(base_model_dir, vllm_python=None, log_path=log_path) as started:  # the embedded engine
        url = started.client._client.base_url
        assert len(draft_pending(database, started)) == 1
    assert cases(database)[0].draft
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)  # stopped with the run
