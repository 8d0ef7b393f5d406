"""A running retrain beats a heartbeat; a run whose process died (SIGKILL, a lost machine) goes
silent, and the scheduler records it failed, which frees the one-running-run slot for the next."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from sqlmodel import col

from chatbot.cli import main
from feedback import errors, store
from feedback.db import Database
from feedback.models import RetrainRun, utcnow
from model_server.client import ModelClient
from retrain.dataset import Dataset
from retrain.job import JobConfig, run_retrain
from retrain.schedule import Jobs
from tests.support import feedback_seed as seed
from tests.support.model_servers import free_port
from tests.support.schedule_worker import FakeRetrain, abandoned_run


def _queue(database: Database) -> int:
    with database.writer() as s:
        run = store.queue_run(s, trigger="admin", requested_by="UADMIN")
    assert run.id is not None
    return run.id


def _start(database: Database) -> int:
    run_id = _queue(database)
    with database.writer() as s:
        store.start_run(s, run_id=run_id)
    return run_id


def _run(database: Database, run_id: int) -> RetrainRun:
    with database.reader() as s:
        run = s.get(RetrainRun, run_id)
    assert run is not None
    return run


def _set(database: Database, run_id: int, **values: Any) -> None:
    """Write a run's columns directly, as a process that died long ago would have left them."""
    with database.writer() as s:
        s.execute(update(RetrainRun).where(col(RetrainRun.id) == run_id).values(**values))
        s.commit()


def _aware(when: datetime | None) -> datetime:
    """SQLite gives datetimes back without their zone; all of them are UTC."""
    assert when is not None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def test_a_run_beats_while_running_and_not_after(database: Database) -> None:
    run_id = _start(database)
    started = _run(database, run_id)
    assert started.heartbeat_at is not None and started.heartbeat_at == started.started_at

    time.sleep(0.01)
    with database.writer() as s:
        assert store.beat_run(s, run_id=run_id) is True
    assert _aware(_run(database, run_id).heartbeat_at) > _aware(started.started_at)

    with database.writer() as s:
        store.finish_run(s, run_id=run_id, status="skipped", error="nothing new")
    beat = _run(database, run_id).heartbeat_at
    with database.writer() as s:
        assert store.beat_run(s, run_id=run_id) is False
        assert store.beat_run(s, run_id=9999) is False
    assert _run(database, run_id).heartbeat_at == beat


def test_a_silent_run_is_reaped_and_a_new_one_can_start(database: Database) -> None:
    silent = _start(database)
    _set(database, silent, heartbeat_at=datetime(2026, 1, 5, 14, 3, tzinfo=UTC))
    waiting = _queue(database)
    with database.writer() as s, pytest.raises(errors.RunInProgress):
        store.start_run(s, run_id=waiting)

    with database.writer() as s:
        assert store.reap_stale_runs(s, older_than=utcnow() - timedelta(minutes=5)) == [silent]
    run = _run(database, silent)
    assert (run.status, run.error) == (
        "failed",
        "The process running this retrain stopped without finishing it (no sign of life since "
        "2026-01-05 14:03 UTC); the active adapter kept serving. Queue the run again.",
    )
    assert run.finished_at is not None
    with database.writer() as s:
        assert store.start_run(s, run_id=waiting).status == "running"
        assert store.reap_stale_runs(s, older_than=utcnow() - timedelta(minutes=5)) == []  # alive
    assert _run(database, waiting).status == "running"


def test_a_run_from_before_heartbeats_counts_from_its_start(database: Database) -> None:
    run_id = _start(database)
    _set(database, run_id, heartbeat_at=None, started_at=utcnow() - timedelta(hours=2))
    with database.writer() as s:
        assert store.reap_stale_runs(s, older_than=utcnow() - timedelta(minutes=5)) == [run_id]
    assert _run(database, run_id).status == "failed"


def test_the_poll_reaps_a_silent_run_then_runs_the_queue(database: Database) -> None:
    silent = _start(database)
    _set(database, silent, heartbeat_at=utcnow() - timedelta(minutes=6))
    queued = _queue(database)
    reported: list[tuple[int | None, str]] = []
    jobs = Jobs(database, FakeRetrain(database), notify=lambda run, _: reported.append((run.id, run.status)))

    assert [(r.id, r.status) for r in jobs.run_queued()] == [(queued, "promoted")]
    assert reported == [(silent, "failed"), (queued, "promoted")]  # the admin channel hears of both
    assert "stopped without finishing" in (_run(database, silent).error or "")


def test_a_run_silent_less_than_stale_after_is_left_alone(database: Database) -> None:
    busy = _start(database)
    _set(database, busy, heartbeat_at=utcnow() - timedelta(minutes=4))
    queued = _queue(database)
    assert Jobs(database, FakeRetrain(database)).run_queued() == []  # it waits for the running one
    assert (_run(database, busy).status, _run(database, queued).status) == ("running", "queued")


def test_the_cron_reaps_a_silent_run_before_queueing(database: Database) -> None:
    silent = _start(database)
    _set(database, silent, heartbeat_at=utcnow() - timedelta(minutes=6))
    seed.votes(database, adapter="base", up=2, down=0)
    run = Jobs(database, FakeRetrain(database), min_examples=1).scheduled_retrain()
    assert run is not None and run.status == "promoted"  # without the reaper: "already running"
    assert _run(database, silent).status == "failed"


class _HealthyServer:
    """Only the model server's /health is asked before the dataset is built."""

    base_url = "http://model-server.invalid"

    def health(self) -> bool:
        return True


def test_run_retrain_beats_until_it_finishes(database: Database, tmp_path: Path) -> None:
    run_id = _queue(database)
    config = JobConfig(
        adapters_dir=tmp_path / "adapters",
        base_model_dir=tmp_path / "base",
        base_model="smollm2",
        progress=False,
        heartbeat_s=0.05,
    )
    seen: list[datetime | None] = []

    def slow_dataset() -> Dataset:
        time.sleep(0.3)  # the heartbeat thread beats meanwhile
        seen.append(_run(database, run_id).heartbeat_at)
        raise RuntimeError("the feedback export broke")

    client = cast(ModelClient, _HealthyServer())
    outcome = run_retrain(config, database, client, run_id=run_id, dataset=slow_dataset)

    run = _run(database, run_id)
    assert outcome.status == run.status == "failed"
    assert _aware(seen[0]) > _aware(run.started_at)
    assert not [t for t in threading.enumerate() if t.name == f"heartbeat-run-{run_id}"]  # stopped
    last = run.heartbeat_at
    time.sleep(0.15)
    assert _run(database, run_id).heartbeat_at == last  # no beats after the run finished


def test_a_run_whose_process_was_killed_is_reaped(database: Database) -> None:
    """A real process starts a run and beats for it; SIGKILL stops the beats, and the next poll
    records the run failed and trains the next one."""
    run_id = _queue(database)
    worker = multiprocessing.get_context("spawn").Process(
        target=abandoned_run, args=(database.url, run_id, 0.1)
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while _run(database, run_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _run(database, run_id).status == "running"
        jobs = Jobs(database, FakeRetrain(database), stale_after=timedelta(seconds=1))
        time.sleep(1.5)  # longer than stale_after: only the heartbeat keeps the run alive
        assert jobs.reap_stale() == []
    finally:
        worker.kill()  # SIGKILL: no finally, no atexit, the run is left `running`
        worker.join(timeout=10)
    assert worker.exitcode == -signal.SIGKILL

    queued = _queue(database)
    time.sleep(1.5)
    assert [(r.id, r.status) for r in jobs.run_queued()] == [(queued, "promoted")]
    assert _run(database, run_id).status == "failed"


def test_chatbot_retrain_reaps_a_silent_run_before_its_own(
    database: Database, tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command (click's runner, settings from the environment); no model server, so its
    own run fails at once, after the silent one was cleared out of its way."""
    url = database.url
    silent = _start(database)
    _set(database, silent, heartbeat_at=utcnow() - timedelta(minutes=6))
    for name, value in {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": url,
        "MODEL_SERVER_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "BASE_MODEL": str(base_model_dir),
        "EMBEDDING_MODEL": "hashing",
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["retrain", "--as", "bob"])
    assert f"Run #{silent} had stopped without finishing" in result.output, result.output
    assert f"Run #{silent + 1} failed" in result.output and "is not answering" in result.output
    assert _run(database, silent).status == "failed"
