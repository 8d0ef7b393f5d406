"""The scheduler's jobs on a real store (SQLite and PostgreSQL): when a scheduled retrain runs, one
run at a time across schedulers and processes, failures recorded, old event keys pruned."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from feedback import queries, store
from feedback.db import Database
from feedback.models import ProcessedEvent, RetrainRun, utcnow
from retrain.errors import TrainingFailed
from retrain.schedule import JOB_TABLE, Jobs, build_scheduler, cron_trigger
from tests.support import feedback_seed as seed
from tests.support.schedule_worker import FakeRetrain, scheduler_process


def _runs(database: Database) -> list[RetrainRun]:
    with database.reader() as s:
        return list(reversed(queries.recent_runs(s, limit=100)))


def _queue(database: Database, n: int) -> list[int]:
    with database.writer() as s:
        return [store.queue_run(s, trigger="admin", requested_by="UADMIN").id or 0 for _ in range(n)]


def test_scheduled_retrain_waits_for_enough_new_examples(database: Database) -> None:
    retrain = FakeRetrain(database)
    jobs = Jobs(database, retrain, min_examples=3)
    seed.approved_correction(database)
    seed.votes(database, adapter="base", up=1, down=0)
    assert jobs.scheduled_retrain() is None  # 2 new examples, 3 needed
    assert _runs(database) == [] and retrain.log == []

    seed.votes(database, adapter="base", up=0, down=1)
    run = jobs.scheduled_retrain()
    assert run is not None and (run.trigger, run.status) == ("schedule", "promoted")
    # Everything taught so far went into that run: the next firing waits for 3 more.
    assert jobs.scheduled_retrain() is None
    assert len(_runs(database)) == 1

    seed.votes(database, adapter="kb-v1", up=2, down=0)
    seed.approved_correction(database)
    assert jobs.scheduled_retrain() is not None
    assert [r.status for r in _runs(database)] == ["promoted", "promoted"]


def test_scheduled_retrain_leaves_a_queued_run_to_the_poll(database: Database) -> None:
    seed.votes(database, adapter="base", up=2, down=0)
    [queued] = _queue(database, 1)
    jobs = Jobs(database, FakeRetrain(database), min_examples=1)
    assert jobs.scheduled_retrain() is None  # the admin's run covers the same examples
    assert [r.id for r in jobs.run_queued()] == [queued]
    assert [(r.trigger, r.status) for r in _runs(database)] == [("admin", "promoted")]


def test_a_failing_retrain_is_recorded_and_the_next_one_still_runs(database: Database) -> None:
    reported: list[tuple[int | None, str]] = []
    first, second = _queue(database, 2)

    class FailOnce(FakeRetrain):
        def __call__(self, *, run_id: int):  # type: ignore[no-untyped-def]
            self.fail = RuntimeError("CUDA out of memory at /secret/path") if run_id == first else None
            return super().__call__(run_id=run_id)

    jobs = Jobs(database, FailOnce(database), notify=lambda run, curve: reported.append((run.id, run.status)))
    finished = jobs.run_queued()
    assert [(r.id, r.status) for r in finished] == [(first, "failed"), (second, "promoted")]
    failed = _runs(database)[0]
    assert failed.error == "Unexpected error (RuntimeError); the scheduler's log has the traceback."
    assert failed.finished_at is not None
    assert reported == [(first, "failed"), (second, "promoted")]


def test_a_full_disk_is_named(database: Database) -> None:
    _queue(database, 1)
    [run] = Jobs(database, FakeRetrain(database, fail=OSError(28, "No space left on device"))).run_queued()
    assert (run.status, run.error) == ("failed", "The disk is full; free some space and queue the run again.")


def test_a_retrain_error_keeps_its_reason(database: Database) -> None:
    [run_id] = _queue(database, 1)
    retrain = FakeRetrain(database, fail=TrainingFailed("The loss became NaN at step 3."))
    [run] = Jobs(database, retrain).run_queued()
    assert (run.id, run.status, run.error) == (run_id, "failed", "The loss became NaN at step 3.")


def test_a_failing_notifier_does_not_stop_the_scheduler(database: Database) -> None:
    _queue(database, 2)

    def notify(run: RetrainRun, curve: Path | None) -> None:
        raise ConnectionError("slack is down")

    finished = Jobs(database, FakeRetrain(database), notify=notify).run_queued()
    assert [r.status for r in finished] == ["promoted", "promoted"]


def test_two_schedulers_never_train_at_once(database: Database) -> None:
    """Two schedulers (threads here, sharing only the database) poll the same queue."""
    retrain_a, retrain_b = FakeRetrain(database, seconds=0.2), FakeRetrain(database, seconds=0.2)
    queued = _queue(database, 4)
    a, b = Jobs(database, retrain_a), Jobs(database, retrain_b)
    start = threading.Barrier(2)

    def poll(jobs: Jobs) -> None:
        start.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            jobs.run_queued()
            with database.reader() as s:
                if not queries.queued_runs(s):
                    return
            time.sleep(0.02)

    threads = [threading.Thread(target=poll, args=(jobs,)) for jobs in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    log = sorted(retrain_a.log + retrain_b.log, key=lambda e: e["start"])
    assert sorted(e["run_id"] for e in log) == queued  # each run trained exactly once
    assert all(earlier["end"] <= later["start"] for earlier, later in itertools.pairwise(log))
    assert [r.status for r in _runs(database)] == ["promoted"] * 4


def test_two_schedulers_firing_the_cron_together_train_once(database: Database) -> None:
    seed.votes(database, adapter="base", up=3, down=0)
    retrains = [FakeRetrain(database, seconds=0.3) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[RetrainRun | None] = []

    def fire(retrain: FakeRetrain) -> None:
        start.wait()
        results.append(Jobs(database, retrain, min_examples=1).scheduled_retrain())

    threads = [threading.Thread(target=fire, args=(r,)) for r in retrains]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.log) for r in retrains) == 1
    assert [r.status for r in _runs(database)] == ["promoted"]  # the loser left no queued run behind
    assert sorted(r is None for r in results) == [False, True]


def test_scheduler_processes_share_the_queue_and_train_one_at_a_time(
    database: Database, tmp_path: Path
) -> None:
    """Two real scheduler processes (SQL job store, interval polling) against one database."""
    queued = _queue(database, 3)
    log_file = tmp_path / "runs.jsonl"
    log_file.touch()
    spawn = multiprocessing.get_context("spawn")
    procs = [
        spawn.Process(target=scheduler_process, args=(database.url, str(log_file), 0.5, 12.0))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 60
    while len(log_file.read_text().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    log = sorted((json.loads(line) for line in log_file.read_text().splitlines()), key=lambda e: e["start"])
    assert sorted(e["run_id"] for e in log) == queued
    assert all(earlier["end"] <= later["start"] for earlier, later in itertools.pairwise(log))
    assert [r.status for r in _runs(database)] == ["promoted"] * 3
    with database.reader() as s:
        jobs = set(s.execute(text(f"SELECT id FROM {JOB_TABLE}")).scalars())
    assert jobs == {"retrain-cron", "retrain-poll", "prune-events", "review-sample", "canary-check"}


def test_prune_events_forgets_only_old_deliveries(database: Database) -> None:
    with database.writer() as s:
        for key in ("old-1", "old-2", "new-1"):
            store.claim_event(s, key=key)
        for row in s.exec(select(ProcessedEvent).where(ProcessedEvent.key != "new-1")):
            row.created_at = utcnow() - timedelta(days=4)
            s.add(row)
        s.commit()
    assert Jobs(database, FakeRetrain(database)).prune_events() == 2
    with database.reader() as s:
        assert [e.key for e in s.exec(select(ProcessedEvent))] == ["new-1"]
    with database.writer() as s:  # a retry of a pruned delivery would be answered again: keep 3 days
        assert store.claim_event(s, key="new-1") is False


def test_scheduler_jobs_are_stored_in_sql_and_replaced_on_restart(database: Database) -> None:
    jobs = Jobs(database, FakeRetrain(database))
    for cron in ("0 3 * * *", "30 4 * * 1-5"):
        scheduler = build_scheduler(jobs, cron=cron, blocking=False)
        scheduler.start(paused=True)
        scheduler.shutdown()
    with database.reader() as s:
        ids = set(s.execute(text(f"SELECT id FROM {JOB_TABLE}")).scalars())
    assert ids == {"retrain-cron", "retrain-poll", "prune-events", "review-sample", "canary-check"}
    scheduler = build_scheduler(jobs, cron="30 4 * * 1-5", blocking=False)
    scheduler.start(paused=True)
    trigger = scheduler.get_job("retrain-cron").trigger
    scheduler.shutdown()
    assert (
        "hour='4'" in str(trigger) and "minute='30'" in str(trigger) and "mon,tue,wed,thu,fri" in str(trigger)
    )


@pytest.mark.parametrize(
    ("expr", "weekday"),
    [("0 3 * * 0", 6), ("0 3 * * 7", 6), ("0 3 * * 1", 0), ("0 3 * * sat", 5)],
)
def test_cron_weekdays_count_from_sunday_as_in_crontab(expr: str, weekday: int) -> None:
    from datetime import UTC, datetime

    fire = cron_trigger(expr).get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC))
    assert fire is not None and fire.weekday() == weekday and fire.hour == 3


@pytest.mark.parametrize(
    ("expr", "message"),
    [("0 3 * *", "5 fields"), ("0 25 * * *", "hour"), ("0 3 * * 5-1", "runs backwards")],
)
def test_a_bad_cron_line_is_refused_with_the_reason(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron_trigger(expr)


def test_a_run_interrupted_by_a_stop_is_recorded_failed(database: Database) -> None:
    [run_id] = _queue(database, 1)
    jobs = Jobs(database, FakeRetrain(database, seconds=1.0))
    worker = threading.Thread(target=jobs.run_queued)
    worker.start()
    deadline = time.monotonic() + 10
    while not jobs.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobs.interrupt("The scheduler was stopped during the run.") == [run_id]
    worker.join()
    [run] = _runs(database)
    assert (run.status, run.error) == ("failed", "The scheduler was stopped during the run.")


def test_the_hourly_review_sampling_runs_and_survives_a_failure(database: Database, caplog) -> None:
    calls: list[str] = []

    def sample() -> list[int]:
        calls.append("sampled")
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return [7]

    jobs = Jobs(database, FakeRetrain(database), sample=sample)
    assert jobs.sample_for_review() == []  # logged, and tried again next hour
    assert "sampling answers for review failed" in caplog.text
    assert jobs.sample_for_review() == [7]
    assert Jobs(database, FakeRetrain(database)).sample_for_review() == []  # REVIEW_DAILY_BUDGET=0


def test_the_canary_check_acts_then_tells_the_admins_each_step_once(database: Database) -> None:
    with database.writer() as s:
        canary = store.open_canary(s, candidate="kb-v2", live="kb-v1", share=0.2, run_id=None, note="opened")
    told: list[str] = []
    checks: list[int] = []

    def check() -> None:  # an admin stopped it meanwhile, say, from the bot
        checks.append(1)
        with database.writer() as s:
            store.close_canary(
                s, canary_id=canary.id or 0, status="stopped", reason="Stopped by U1.", actor="U1"
            )

    jobs = Jobs(database, FakeRetrain(database), canary=check, tell=told.append)
    assert jobs.check_canary() == 2
    assert told == ["Canary #1 (kb-v2): opened", "Canary #1 (kb-v2): Stopped by U1."]
    jobs.canary = None
    assert jobs.check_canary() == 0 and len(told) == 2  # told once


def test_a_failing_canary_check_or_channel_is_retried_next_time(database: Database) -> None:
    with database.writer() as s:
        store.open_canary(s, candidate="kb-v2", live="kb-v1", share=0.2, run_id=None, note="opened")

    def broken(text: str) -> None:
        raise ConnectionError("Slack is down")

    def failing() -> None:
        raise RuntimeError("model server gone")

    jobs = Jobs(database, FakeRetrain(database), canary=failing, tell=broken)
    assert jobs.check_canary() == 0
    told: list[str] = []
    jobs.tell = told.append
    assert jobs.check_canary() == 1 and told == ["Canary #1 (kb-v2): opened"]
