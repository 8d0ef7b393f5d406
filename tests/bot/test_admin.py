"""Admin commands (platform-neutral) against a real store on SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest

from bot.admin import AdminCommands, run_summary
from feedback import queries, store
from feedback.db import Database
from feedback.errors import InvalidTransition
from model_server.errors import ModelServerError
from tests.support import feedback_seed as seed

ADMIN = "UADMIN"


def commands(database: Database, **kw: object) -> AdminCommands:
    return AdminCommands(database, admins=[ADMIN], **kw)  # type: ignore[arg-type]


async def test_non_admin_is_refused_and_the_attempt_logged(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    admin = commands(database)
    with caplog.at_level(logging.WARNING, logger="bot.admin"):
        reply = await admin.handle("UINTRUDER", "retrain")
    assert "only the bot's admins can run `retrain`" in reply.text
    assert any("UINTRUDER" in r.getMessage() and "retrain" in r.getMessage() for r in caplog.records)
    with database.reader() as s:
        assert queries.recent_runs(s) == []  # nothing queued
    assert not admin.is_admin("UINTRUDER") and admin.is_admin(ADMIN)


async def test_retrain_queues_one_run_and_refuses_a_second_kindly(database: Database) -> None:
    admin = commands(database)
    reply = await admin.handle(ADMIN, "retrain")
    with database.reader() as s:
        [run] = queries.recent_runs(s)
    assert (run.status, run.trigger, run.requested_by) == ("queued", "admin", ADMIN)
    assert f"Retrain #{run.id} is queued" in reply.text

    again = await admin.handle(ADMIN, "  RETRAIN ")
    assert f"Retrain #{run.id} is already queued" in again.text
    with database.reader() as s:
        assert len(queries.recent_runs(s)) == 1


async def test_status_shows_adapter_runs_feedback_and_thumbs_up_rate(database: Database) -> None:
    seed.adapters(database, "kb-v1", "kb-v2")
    seed.votes(database, adapter="kb-v1", up=1, down=3)
    seed.votes(database, adapter="kb-v2", up=3, down=1)
    seed.approved_correction(database)
    with database.writer() as s:
        run = store.queue_run(s, trigger="admin", requested_by=ADMIN)
        store.start_run(s, run_id=run.id or 0)
        store.finish_run(s, run_id=run.id or 0, status="rejected", candidate="kb-v3", decision="F1 fell 0.05")
        store.queue_run(s, trigger="schedule")

    text = (await commands(database).handle(ADMIN, "status")).text
    assert "Serving: kb-v2" in text and "a rollback goes to kb-v1" in text
    assert f"#{run.id} rejected kb-v3 (asked by {ADMIN}" in text and "F1 fell 0.05" in text
    assert f"#{(run.id or 0) + 1} queued (schedule" in text
    assert "Feedback: 8 votes (4 👍, 4 👎); corrections: 0 pending, 1 approved, 0 rejected." in text
    assert "• kb-v1: 25% of 4 votes" in text and "• kb-v2: 75% of 4 votes" in text


async def test_status_of_a_new_install(database: Database) -> None:
    text = (await commands(database).handle(ADMIN, "status")).text
    assert "Serving: the base model" in text and "Recent retrains: none yet." in text
    assert "Feedback: 0 votes" in text


async def test_adapters_marks_active_and_previous(database: Database) -> None:
    admin = commands(database)
    assert "No adapter versions yet" in (await admin.handle(ADMIN, "adapters")).text
    seed.adapters(database, "kb-v1", "kb-v2", "kb-v3")
    lines = (await admin.handle(ADMIN, "adapters")).text.splitlines()
    assert lines[1].startswith("• kb-v3 [ACTIVE] – active, from kb-v2")
    assert lines[2].startswith("• kb-v2 [previous] – retired")
    assert lines[3].startswith("• kb-v1 – retired, from base")


async def test_rollback_goes_through_the_injected_callable(database: Database) -> None:
    seed.adapters(database, "kb-v1", "kb-v2")
    actors: list[str] = []

    def rollback(actor: str) -> None:  # what the composition root hands in also reloads the model server
        actors.append(actor)
        with database.writer() as s:
            store.rollback_adapter(s, actor=actor)

    reply = await commands(database, rollback=rollback).handle(ADMIN, "rollback")
    assert actors == [ADMIN]
    assert reply.text == "Rolled back: kb-v1 is serving now (was kb-v2)."
    with database.reader() as s:
        [change, *_] = queries.adapter_history(s)
    assert (change.action, change.from_name, change.to_name, change.actor) == (
        "rollback",
        "kb-v2",
        "kb-v1",
        ADMIN,
    )


async def test_rollback_with_nothing_to_roll_back_says_so(database: Database) -> None:
    reply = await commands(database).handle(ADMIN, "rollback")
    assert reply.text.startswith("Nothing was rolled back: The base model is serving")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ModelServerError("The model server at http://m:8000 is not reachable."), "not reachable"),
        (InvalidTransition("Adapter 'kb-v1' is already active."), "already active"),
        (RuntimeError("secret internals /etc/passwd"), "The rollback failed"),
    ],
)
async def test_a_failed_rollback_keeps_the_adapter_and_hides_internals(
    database: Database, error: Exception, expected: str
) -> None:
    seed.adapters(database, "kb-v1", "kb-v2")

    def rollback(actor: str) -> None:
        raise error

    reply = await commands(database, rollback=rollback).handle(ADMIN, "rollback")
    assert expected in reply.text and "internals" not in reply.text
    with database.reader() as s:
        active = queries.active_adapter(s)
    assert active is not None and active.name == "kb-v2"


async def test_help_and_unknown_commands(database: Database) -> None:
    admin = commands(database)
    assert "• retrain" in (await admin.handle(ADMIN, "")).text
    assert "I don't know the admin command `frobnicate`" in (await admin.handle(ADMIN, "frobnicate")).text


def test_run_summary_lists_decision_and_figures(database: Database) -> None:
    with database.writer() as s:
        run = store.queue_run(s, trigger="schedule")
        store.start_run(s, run_id=run.id or 0)
        done = store.finish_run(
            s,
            run_id=run.id or 0,
            status="promoted",
            candidate="kb-v4",
            decision="passed: F1 +0.04",
            metrics={"candidate": {"val_loss": 1.234567, "f1": 0.5}, "loss_curve": [3.0, 2.0], "steps": 30},
        )
    text = run_summary(done)
    assert f"Retrain #{run.id} (schedule): promoted kb-v4: it is serving now." in text
    assert "Decision: passed: F1 +0.04" in text
    assert "• candidate.val_loss: 1.235" in text and "• steps: 30" in text
    assert "loss_curve" not in text


async def test_gaps_lists_the_questions_the_documents_did_not_answer(database: Database) -> None:
    admin = AdminCommands(database, admins=["UADMIN"])
    assert (await admin.handle("UADMIN", "gaps")).text.startswith("No documentation gaps found yet")
    prompt = [
        {"role": "system", "content": "Answer.\n\nDocuments:\n[1] Leave\nEveryone gets 26 days a year."},
        {"role": "user", "content": "How much leave do interns get?"},
    ]
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="How much leave do interns get?")
        sources = [{"id": "p1", "title": "Leave > Allowance", "source": "leave.md"}]
        a = store.record_answer(
            s, question_id=q.id or 0, text="26.", adapter="base", prompt=prompt, sources=sources
        )
        store.submit_correction(s, answer_id=a.id or 0, author="U2", text="Interns get 13 days.")
    reply = (await admin.handle("UADMIN", "gaps")).text
    assert reply.splitlines()[1] == "• Leave > Allowance (1): “How much leave do interns get?”"
