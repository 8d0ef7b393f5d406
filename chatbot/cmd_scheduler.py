"""`chatbot scheduler`: retrains on RETRAIN_CRON and the ones admins queue, one at a time; results to
ADMIN_CHANNEL; `/healthz` and `/metrics` on SCHEDULER_PORT (`chatbot.scheduler_monitor`). Run one or
several (they share the database; give each on one host its own SCHEDULER_PORT); stop with SIGINT or
SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from bot.review.sampler import Sampler
from chatbot.common import load_settings
from chatbot.retraining import Retrainer, rollout_config
from chatbot.scheduler_monitor import SchedulerMetrics, start_monitor
from chatbot.settings import Settings, SettingsError
from chatbot.wiring import model_client, open_database
from feedback import migrate
from feedback.db import Database
from feedback.models import RetrainRun
from model_server import launch
from model_server.client import ModelClient
from model_server.health import ThreadedHealthCache
from retrain.drafts import Teacher, default_teacher, draft_pending, local_teacher, waiting_for_drafts
from retrain.schedule import POLL_SECONDS, Jobs, build_scheduler, cron_trigger

if TYPE_CHECKING:  # slack_sdk is imported only where an admin channel is set
    from bot.slack.admin_channel import AdminChannel

log = logging.getLogger("chatbot.scheduler")

INTERRUPTED = "The scheduler was stopped during the run; the active adapter kept serving. Queue it again."


def admin_channel(settings: Settings) -> AdminChannel | None:
    token = settings.slack_bot_token.get_secret_value()
    if not (token and settings.admin_channel):
        log.warning("ADMIN_CHANNEL or SLACK_BOT_TOKEN is not set: retrain results are only logged")
        return None
    from bot.slack.admin_channel import AdminChannel, sync_web_client

    return AdminChannel(
        sync_web_client(bot_token=token, api_url=settings.slack_api_url), settings.admin_channel
    )


def admin_lines(settings: Settings) -> Callable[[str], None]:
    """One line to the admin channel (a canary's steps), or to the log without one."""
    channel = admin_channel(settings)
    if channel is None:
        return lambda text: log.info("%s", text)
    return channel.post


def canary_work(settings: Settings, database: Database) -> Callable[[], object]:
    """The canary check: the open canary's votes looked at, and acted on (`retrain.rollout`)."""
    from retrain import rollout

    config = rollout_config(settings)

    def work() -> object:
        with model_client(settings, timeout=300.0) as client:
            return rollout.check(database, client, config)

    return work


def _log_result(run: RetrainRun, _: object) -> None:
    log.info("retrain run #%s %s %s", run.id, run.status, run.error or run.decision or "")


def review_work(settings: Settings, database: Database) -> Callable[[], list[int]] | None:
    """The hourly review job: queue answers for review, then have the teacher draft them: the
    TEACHER_URL endpoint, or else the largest prepared catalog model where it is larger than the
    served one, on a model server started for the drafting and stopped after it."""
    sampler = Sampler(database, daily_budget=settings.review_daily_budget)
    teacher = None
    if settings.teacher_url and settings.teacher_model:
        teacher = Teacher(
            ModelClient(
                settings.teacher_url,
                timeout=120,
                retries=0,
                api_key=settings.teacher_api_key.get_secret_value(),
            ),
            settings.teacher_model,
        )
    local = None if teacher is not None else default_teacher(settings.data_dir, settings.base_model)
    if not settings.review_daily_budget and teacher is None and local is None:
        return None

    def work() -> list[int]:
        queued = sampler.run() if settings.review_daily_budget else []
        if not settings.review_drafts_per_run:
            return queued
        if teacher is not None:
            draft_pending(database, teacher, max_cases=settings.review_drafts_per_run)
        elif local is not None and waiting_for_drafts(database):
            log_path = settings.data_dir / "logs" / "teacher.log"
            python = launch.find_vllm_python(settings.vllm_python)
            with local_teacher(local, vllm_python=python, log_path=log_path) as started:
                draft_pending(database, started, max_cases=settings.review_drafts_per_run)
        return queued

    return work


@click.command("scheduler")
@click.option(
    "--poll-seconds",
    type=float,
    default=POLL_SECONDS,
    show_default=True,
    envvar="SCHEDULER_POLL_SECONDS",
    help="How often to look for queued runs and at an open canary (env SCHEDULER_POLL_SECONDS).",
)
def scheduler(poll_seconds: float) -> None:
    """Run scheduled and admin-queued retrains (one at a time across processes) and housekeeping."""
    settings = load_settings()
    try:
        cron_trigger(settings.retrain_cron)
    except ValueError as exc:
        raise SettingsError(
            f"RETRAIN_CRON={settings.retrain_cron!r} is not usable: {exc}. "
            "Use a crontab line, e.g. '0 3 * * *' for 03:00 every day."
        ) from None
    database = open_database(settings)  # creates DATA_DIR for a new SQLite file
    if migrate.current(settings.sqlalchemy_url) != migrate.head():
        raise SettingsError(
            "The database schema is not up to date: run `chatbot setup` (or `chatbot db upgrade`)."
        )

    metrics = SchedulerMetrics()
    jobs = Jobs(
        database,
        Retrainer(settings, database),
        notify=metrics.counting(admin_channel(settings) or _log_result),
        min_examples=settings.retrain_min_examples,
        sample=review_work(settings, database),
        canary=canary_work(settings, database),
        tell=admin_lines(settings),
    )
    runner = build_scheduler(jobs, cron=settings.retrain_cron, poll_seconds=poll_seconds)

    metrics.running.set_function(lambda: len(jobs.running))

    # Reported, not fatal: runs queue and wait; a retrain started meanwhile fails and says why.
    health_client = model_client(settings, retries=0)
    model = ThreadedHealthCache(lambda seconds: health_client.health(timeout=seconds))

    def health() -> dict[str, object]:
        if not runner.running:
            return {"status": "stopped", "running_runs": sorted(jobs.running)}
        up = model.up()
        return {
            "status": "ok" if up else "degraded",
            "model_server": "up" if up else "down",
            "running_runs": sorted(jobs.running),
        }

    monitor = start_monitor(metrics, health, port=settings.scheduler_port)

    def stop(signum: int, _: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    log.info(
        "scheduler: retrain on %r with %d new examples, queued runs every %gs",
        settings.retrain_cron,
        settings.retrain_min_examples,
        poll_seconds,
    )
    try:
        runner.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        interrupted = jobs.interrupt(INTERRUPTED)
        if runner.running:
            runner.shutdown(wait=False)
        if monitor is not None:
            monitor.close()
        health_client.close()
        database.dispose()
    if interrupted:
        # Training cannot be stopped from outside its thread, and it must not promote anything
        # after its run was recorded as failed: leave now.
        log.warning("scheduler stopped during retrain run(s) %s; recorded as failed", interrupted)
        logging.shutdown()
        os._exit(1)
    log.info("scheduler stopped")
