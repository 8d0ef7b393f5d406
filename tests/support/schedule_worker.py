"""A stand-in for `retrain.job.run_retrain` with the same contract (it starts the queued run, records
its outcome, lets `RunInProgress` through), and a scheduler process for the cross-process test."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedback import store
from feedback.db import Database


@dataclass
class Outcome:
    run_id: int
    status: str
    adapter: str | None
    reason: str | None
    figures: dict[str, Any] = field(default_factory=dict)
    loss_curve: Path | None = None


class FakeRetrain:
    """Trains for `seconds`; raises `fail` mid-run when given. Keeps what happened in `log`
    (and appends it to `log_file` as JSON lines, for runs in other processes)."""

    def __init__(
        self,
        database: Database,
        *,
        seconds: float = 0.0,
        fail: BaseException | None = None,
        loss_curve: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.database, self.seconds, self.fail, self.loss_curve = database, seconds, fail, loss_curve
        self.log_file = log_file
        self.log: list[dict[str, Any]] = []
        self.active = self.most_active = 0
        self._lock = threading.Lock()

    def __call__(self, *, run_id: int) -> Outcome:
        with self.database.writer() as session:
            store.start_run(session, run_id=run_id)
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        started = time.time()
        try:
            time.sleep(self.seconds)
            if self.fail is not None:
                raise self.fail
        finally:
            with self._lock:
                self.active -= 1
            entry = {"run_id": run_id, "pid": os.getpid(), "start": started, "end": time.time()}
            self.log.append(entry)
            if self.log_file is not None:
                with self.log_file.open("a") as out:
                    out.write(json.dumps(entry) + "\n")
        figures = {"gate": {"f1": 0.61, "live_f1": 0.55}, "loss_curve": [2.0, 1.5]}
        with self.database.writer() as session:
            store.finish_run(
                session,
                run_id=run_id,
                status="promoted",
                candidate=f"kb-v{run_id}",
                decision="passed: F1 +0.06",
                metrics=figures,
            )
        return Outcome(run_id, "promoted", f"kb-v{run_id}", "passed: F1 +0.06", figures, self.loss_curve)


def scheduler_process(url: str, log_file: str, seconds: float, stop_after: float) -> None:
    """A whole scheduler (SQL job store, the real jobs) in its own process, for `stop_after` s."""
    from retrain.schedule import Jobs, build_scheduler

    database = Database(url)
    retrain = FakeRetrain(database, seconds=seconds, log_file=Path(log_file))
    scheduler = build_scheduler(
        Jobs(database, retrain, min_examples=1), cron="0 3 * * *", poll_seconds=0.2, blocking=False
    )
    scheduler.start()
    time.sleep(stop_after)
    scheduler.shutdown(wait=True)
    database.dispose()


def abandoned_run(url: str, run_id: int, every_s: float) -> None:
    """Start the queued run and keep its heartbeat going until this process is killed, as a
    retrain does while it trains (for the SIGKILL test)."""
    from retrain.heartbeat import beating

    database = Database(url)
    with database.writer() as session:
        store.start_run(session, run_id=run_id)
    with beating(database, run_id, every_s):
        time.sleep(600)
