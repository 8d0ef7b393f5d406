"""A running retrain's sign of life: a daemon thread that moves its `heartbeat_at` forward.

    with beating(database, run_id, every_s=30.0):
        ...  # the run's work

A process killed with SIGKILL (or a machine that dies) cannot record its run as finished, and the
database refuses every later run while that one stays `running`. The heartbeat lets the scheduler
tell such a run from a slow one: `store.reap_stale_runs` fails the runs that went silent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from feedback import store
from feedback.db import Database

log = logging.getLogger(__name__)


@contextmanager
def beating(database: Database, run_id: int, every_s: float) -> Iterator[None]:
    """Beat every `every_s` seconds until the block ends. A failed beat (the database briefly
    gone) is logged and retried on the next tick; it never breaks the run."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat, args=(database, run_id, every_s, stop), name=f"heartbeat-run-{run_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=max(every_s, 5.0))


def _beat(database: Database, run_id: int, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        try:
            with database.writer() as session:
                alive = store.beat_run(session, run_id=run_id)
        except Exception:
            log.warning("retrain run #%d: could not record its heartbeat", run_id, exc_info=True)
            continue
        if not alive:  # finished, or reaped as stale: there is nothing left to keep alive
            if not stop.is_set():
                log.warning("retrain run #%d is no longer recorded as running; heartbeat stopped", run_id)
            return
