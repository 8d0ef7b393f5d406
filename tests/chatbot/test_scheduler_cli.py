"""`chatbot scheduler` as a real process: settings refused with a clear message, jobs stored in SQL,
a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from feedback import migrate
from retrain.schedule import JOB_TABLE


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DATA_DIR", "SLACK_"))}
    return {**env, "DATA_DIR": str(tmp_path / "data"), "ENVIRONMENT": "development", **extra}


def _run(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatbot", "scheduler"],
        env=_env(tmp_path, **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bad_retrain_cron_is_refused_with_the_reason(tmp_path: Path) -> None:
    result = _run(tmp_path, RETRAIN_CRON="0 25 * * *")
    assert result.returncode == 1
    assert "RETRAIN_CRON='0 25 * * *' is not usable: the hour field '25' is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmigrated_database_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 1 and "run `chatbot setup`" in result.stderr


def test_the_scheduler_stores_its_jobs_and_stops_on_sigterm(tmp_path: Path) -> None:
    # A store of its own at DATA_DIR's default path: the process is given no DATABASE_URL and finds it.
    url = f"sqlite:///{tmp_path / 'data' / 'chatbot.db'}"
    migrate.upgrade(url)
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "scheduler", "--poll-seconds", "1"],
        env=_env(tmp_path, ADMIN_CHANNEL="CADMINS"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 90
        jobs: set[str] = set()
        while len(jobs) < 5 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            with engine.connect() as conn:
                if conn.execute(text(f"SELECT count(*) FROM {JOB_TABLE}")).scalar():
                    jobs = set(conn.execute(text(f"SELECT id FROM {JOB_TABLE}")).scalars())
        assert jobs == {"retrain-cron", "retrain-poll", "prune-events", "review-sample", "canary-check"}
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        engine.dispose()
    assert process.returncode == 0, stderr
    assert "retrain results are only logged" in stderr  # no SLACK_BOT_TOKEN: nowhere to post
    assert "scheduler stopped" in stderr
