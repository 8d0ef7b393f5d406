"""The scheduler's jobs: scheduled retrains, retrains an admin queued, and housekeeping.

    scheduler = build_scheduler(jobs, cron="0 3 * * *")   # jobs stored in the app database
    scheduler.start()

Jobs (their ids in the `apscheduler_jobs` table):
  - `retrain-cron`  on RETRAIN_CRON: queue and run a retrain when at least `min_examples` new
    examples arrived since the last run that trained to the end (`new_examples_since`);
  - `retrain-poll`  every `poll_seconds`: run the retrains admins queued (`/chatbot retrain`);
  - `prune-events`  hourly: forget platform deliveries older than `keep_events`;
  - `review-sample` hourly: queue answers nobody voted on for review, and draft them;
  - `canary-check`  every `poll_seconds`: act on an open canary's votes (`retrain.rollout`) and tell
    the admins each of its steps once.

One retrain runs at a time across every process sharing the database: `store.start_run` (inside
the retrain callable) refuses a second one, and the loser leaves the run for whoever holds it. A
retrain that raises is recorded `failed` with its reason and the scheduler keeps going; after
each run `notify` (the admin channel) gets the run as recorded. A run whose process was killed
(no heartbeat for `stale_after`) is recorded `failed` and reported before either retrain job runs.

APScheduler stores a job as a reference to a module-level function, so the job functions here take
no arguments and work with the `Jobs` this process installed with `build_scheduler`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from feedback import queries, store
from feedback.db import Database
from feedback.errors import FeedbackError, InvalidTransition, RunInProgress, RunPending
from feedback.models import RetrainRun, utcnow
from retrain.errors import failure_reason

if TYPE_CHECKING:
    from retrain.job import RetrainOutcome

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
POLL_SECONDS = 30
KEEP_EVENTS = timedelta(days=3)
# Ten missed heartbeats (retrain.heartbeat beats every 30 s): the run's process is gone.
STALE_AFTER = timedelta(minutes=5)
CRON_FIELDS = (
    ("minute", "minute"),
    ("hour", "hour"),
    ("day", "day-of-month"),
    ("month", "month"),
    ("day_of_week", "weekday"),
)
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Retrain(Protocol):
    """Runs one queued retrain to the end (`retrain.job.run_retrain` with its collaborators bound):
    starts it, records its outcome; raises `RunInProgress` when another run holds the slot."""

    def __call__(self, *, run_id: int) -> RetrainOutcome: ...


# Told about every finished run, as recorded, with its loss curve when one was drawn.
Notify = Callable[[RetrainRun, Path | None], None]


@dataclass
class Jobs:
    database: Database
    retrain: Retrain
    notify: Notify | None = None
    min_examples: int = 20
    keep_events: timedelta = KEEP_EVENTS
    stale_after: timedelta = STALE_AFTER  # a running run silent this long was abandoned
    # Queues unvoted answers for review (bot.review.sampler), hourly; None: no sampling.
    sample: Callable[[], list[int]] | None = None
    # Looks at the open canary's votes and acts (retrain.rollout.check with its collaborators bound).
    canary: Callable[[], object] | None = None
    # Tells the admins one line (the admin channel): each step of a canary, once.
    tell: Callable[[str], None] | None = None
    running: set[int] = field(default_factory=set)  # runs this process is working on
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- the three jobs --------------------------------------------------------------------------

    def scheduled_retrain(self) -> RetrainRun | None:
        """Queue and run a retrain if enough was taught since the last one; the run, or None."""
        self.reap_stale()
        with self.database.reader() as session:
            last = queries.last_completed_run(session)
            since = last.started_at if last else None
            new = queries.new_examples_since(session, since)
        if new < self.min_examples:
            log.info("scheduled retrain skipped: %d new examples, %d needed", new, self.min_examples)
            return None
        try:
            with self.database.writer() as session:
                run = store.queue_run(session, trigger="schedule", if_idle=True)
        except RunPending as exc:
            log.info("scheduled retrain not queued: %s", exc)
            return None
        assert run.id is not None
        log.info("scheduled retrain #%d: %d new examples", run.id, new)
        done = self.execute(run.id)
        if done is None:  # another scheduler won the race; this run never started
            with self.database.writer() as session:
                store.withdraw_run(session, run_id=run.id)
        return done

    def run_queued(self) -> list[RetrainRun]:
        """Run the queued retrains, oldest first, while the slot is free; the runs finished here."""
        self.reap_stale()
        done: list[RetrainRun] = []
        with self.database.reader() as session:
            queued = [run.id for run in queries.queued_runs(session) if run.id is not None]
        for run_id in queued:
            try:
                finished = self.execute(run_id, raise_busy=True)
            except RunInProgress:
                break  # someone is training; the rest wait for the next poll
            if finished is not None:
                done.append(finished)
        return done

    def reap_stale(self) -> list[int]:
        """Fail the running runs whose process died without finishing them (no heartbeat for
        `stale_after`), so they stop blocking every later run; each is reported like any other."""
        with self.database.writer() as session:
            reaped = store.reap_stale_runs(session, older_than=utcnow() - self.stale_after)
        for run_id in reaped:
            with self.database.reader() as session:
                run = session.get(RetrainRun, run_id)
            if run is not None:
                self._notify(run, None)
        return reaped

    def sample_for_review(self) -> list[int]:
        """The cases queued for review this hour; a failure is logged and retried next hour."""
        if self.sample is None:
            return []
        try:
            queued = self.sample()
        except Exception:
            log.exception("sampling answers for review failed")
            return []
        if queued:
            log.info("queued %d answers for review: cases %s", len(queued), queued)
        return queued

    def check_canary(self) -> int:
        """Act on the open canary's votes, then tell the admins its steps they have not heard of
        (wherever they were taken: here, or an admin's command in the bot); how many were told."""
        if self.canary is not None:
            try:
                self.canary()
            except Exception:
                log.exception("checking the canary failed; the next check tries again")
        with self.database.reader() as session:
            canary = queries.latest_canary(session)
        if canary is None or self.tell is None or canary.posted >= len(canary.steps):
            return 0
        told = canary.posted
        for step in canary.steps[canary.posted :]:
            try:
                self.tell(f"Canary #{canary.id} ({canary.candidate}): {step['text']}")
            except Exception:
                log.warning("could not tell the admins about canary #%s", canary.id, exc_info=True)
                break
            told += 1
        with self.database.writer() as session:
            store.canary_posted(session, canary_id=canary.id or 0, posted=told)
        return told - canary.posted

    def prune_events(self) -> int:
        with self.database.writer() as session:
            pruned = store.prune_events(session, older_than=utcnow() - self.keep_events)
        log.info("pruned %d processed-event keys", pruned)
        return pruned

    # --- one run ---------------------------------------------------------------------------------

    def execute(self, run_id: int, *, raise_busy: bool = False) -> RetrainRun | None:
        """Run one queued retrain and report it; None when another process holds it or the slot."""
        with self._lock:
            self.running.add(run_id)
        loss_curve: Path | None = None
        try:
            outcome = self.retrain(run_id=run_id)
            loss_curve = outcome.loss_curve
        except RunInProgress:
            log.info("run #%d waits: another retrain is running", run_id)
            if raise_busy:
                raise
            return None
        except InvalidTransition as exc:  # another scheduler took this very run first
            log.info("run #%d not started here: %s", run_id, exc)
            return None
        except Exception as exc:
            log.error("retrain run #%d raised", run_id, exc_info=True)
            self._record_failure(run_id, failure_reason(exc, log="the scheduler's log"))
        finally:
            with self._lock:
                self.running.discard(run_id)
        with self.database.reader() as session:
            run = session.get(RetrainRun, run_id)
        if run is not None:
            self._notify(run, loss_curve)
        return run

    def interrupt(self, reason: str) -> list[int]:
        """Record the runs this process is working on as failed (it is being stopped)."""
        with self._lock:
            running = sorted(self.running)
        for run_id in running:
            self._record_failure(run_id, reason)
        return running

    def _record_failure(self, run_id: int, reason: str) -> None:
        try:
            with self.database.writer() as session:
                run = session.get(RetrainRun, run_id)
                if run is not None and run.status == "queued":
                    store.start_run(session, run_id=run_id)
                store.finish_run(session, run_id=run_id, status="failed", error=reason)
        except FeedbackError as exc:
            log.warning("could not record run #%d as failed: %s", run_id, exc)

    def _notify(self, run: RetrainRun, loss_curve: Path | None) -> None:
        if self.notify is None:
            return
        try:
            self.notify(run, loss_curve)
        except Exception:  # the run is recorded either way; a Slack outage must not stop the scheduler
            log.warning("could not post the result of run #%s", run.id, exc_info=True)


# --- the scheduler ---------------------------------------------------------------------------------

_installed: Jobs | None = None


def _jobs() -> Jobs:
    if _installed is None:
        raise RuntimeError("build_scheduler() was not called in this process")
    return _installed


def retrain_cron_job() -> None:
    _jobs().scheduled_retrain()


def retrain_poll_job() -> None:
    _jobs().run_queued()


def prune_events_job() -> None:
    _jobs().prune_events()


def review_sample_job() -> None:
    _jobs().sample_for_review()


def canary_check_job() -> None:
    _jobs().check_canary()


def cron_trigger(expr: str) -> CronTrigger:
    """A standard crontab line (minute hour day month weekday, 0 or 7 = Sunday). APScheduler 3
    counts weekdays from Monday, so numeric weekdays are passed to it as names.
    Raises ValueError with what is wrong."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields (minute hour day month weekday), not {len(fields)}")
    fields[4] = ",".join(_weekday_names(item) for item in fields[4].split(","))
    for (name, label), value in zip(CRON_FIELDS, fields, strict=True):
        try:
            CronTrigger(**{name: value})
        except ValueError as exc:
            raise ValueError(f"the {label} field {value!r} is not valid ({exc})") from None
    return CronTrigger.from_crontab(" ".join(fields))


def _weekday_names(item: str) -> str:
    match = re.fullmatch(r"([0-7])(?:-([0-7]))?", item)
    if match is None:
        return item
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if last < first:
        raise ValueError(f"weekday range {item!r} runs backwards")
    return ",".join(dict.fromkeys(WEEKDAYS[n] for n in range(first, last + 1)))


def build_scheduler(
    jobs: Jobs,
    *,
    cron: str,
    poll_seconds: float = POLL_SECONDS,
    blocking: bool = True,
) -> BaseScheduler:
    """A scheduler whose jobs live in the app database. `blocking=False` runs it in a thread."""
    global _installed
    trigger = cron_trigger(cron)
    _installed = jobs
    store_ = SQLAlchemyJobStore(engine=jobs.database.engine, tablename=JOB_TABLE)
    scheduler_cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = scheduler_cls(
        jobstores={"default": store_},
        # A late or piled-up firing runs once; never two of the same job in one process.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    scheduler.add_job(retrain_cron_job, trigger, id="retrain-cron", replace_existing=True)
    scheduler.add_job(
        retrain_poll_job, "interval", seconds=poll_seconds, id="retrain-poll", replace_existing=True
    )
    scheduler.add_job(prune_events_job, "interval", hours=1, id="prune-events", replace_existing=True)
    scheduler.add_job(review_sample_job, "interval", hours=1, id="review-sample", replace_existing=True)
    scheduler.add_job(
        canary_check_job, "interval", seconds=poll_seconds, id="canary-check", replace_existing=True
    )
    return scheduler
