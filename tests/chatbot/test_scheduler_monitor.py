"""The scheduler's /healthz and /metrics: counted runs by outcome and their durations from real
jobs on a real store, and `chatbot scheduler` serving them on SCHEDULER_PORT as a real process."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatbot.scheduler_monitor import MonitorServer, SchedulerMetrics, start_monitor
from feedback import migrate, store
from feedback.db import Database
from feedback.models import RetrainRun
from retrain.schedule import Jobs
from tests.support.schedule_worker import FakeRetrain


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_runs_are_counted_by_outcome_with_their_duration(database: Database) -> None:
    told: list[tuple[int | None, str]] = []
    with database.writer() as s:
        first = store.queue_run(s, trigger="admin", requested_by="ada").id
        second = store.queue_run(s, trigger="admin", requested_by="ada").id

    class FailFirst(FakeRetrain):
        def __call__(self, *, run_id: int) -> Any:
            self.fail = RuntimeError("boom") if run_id == first else None
            return super().__call__(run_id=run_id)

    metrics = SchedulerMetrics()
    jobs = Jobs(
        database,
        FailFirst(database, seconds=0.05),
        notify=metrics.counting(lambda run, _: told.append((run.id, run.status))),
    )
    state: dict[str, Any] = {"status": "ok", "running_runs": []}
    server = MonitorServer(metrics, lambda: state, host="127.0.0.1", port=0).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        assert _get(f"{url}/healthz") == (200, json.dumps(state))
        jobs.run_queued()
        assert told == [(first, "failed"), (second, "promoted")]  # the admin channel still told
        status, text = _get(f"{url}/metrics")
        assert status == 200
        samples = _samples(text)
        assert samples[("chatbot_retrain_runs_total", (("status", "failed"),))] == 1
        assert samples[("chatbot_retrain_runs_total", (("status", "promoted"),))] == 1
        assert samples[("chatbot_retrain_run_seconds_count", (("status", "promoted"),))] == 1
        assert samples[("chatbot_retrain_run_seconds_sum", (("status", "promoted"),))] >= 0.05
        state |= {"status": "degraded", "model_server": "down"}  # still scheduling: not a failure
        assert _get(f"{url}/healthz") == (200, json.dumps(state))
        state["status"] = "stopped"
        assert _get(f"{url}/healthz")[0] == 503
        assert _get(f"{url}/other")[0] == 404
    finally:
        server.close()


def test_a_run_without_times_is_counted_without_a_duration() -> None:
    metrics = SchedulerMetrics()
    metrics.observe(RetrainRun(id=1, trigger="admin", status="failed"))
    samples = _samples(metrics.render().decode())
    assert samples[("chatbot_retrain_runs_total", (("status", "failed"),))] == 1
    assert ("chatbot_retrain_run_seconds_count", (("status", "failed"),)) not in samples


def test_a_taken_port_or_zero_leaves_the_scheduler_running_without_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = SchedulerMetrics()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR):
            assert start_monitor(metrics, dict, port=port) is None
    assert f"cannot listen on SCHEDULER_PORT={port}" in caplog.text
    assert start_monitor(metrics, dict, port=0) is None


def test_chatbot_scheduler_serves_healthz_and_metrics(tmp_path: Path) -> None:
    # A store of its own at DATA_DIR's default path: the process is given no DATABASE_URL and finds it.
    url = f"sqlite:///{tmp_path / 'data' / 'chatbot.db'}"
    migrate.upgrade(url)
    port = _free_port()
    refusing = socket.socket()  # bound, not listening: the model server refuses every connection
    refusing.bind(("127.0.0.1", 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DATA_DIR", "SLACK_"))}
    env |= {"DATA_DIR": str(tmp_path / "data"), "ENVIRONMENT": "development", "SCHEDULER_PORT": str(port)}
    env["MODEL_SERVER_URL"] = f"http://127.0.0.1:{refusing.getsockname()[1]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "scheduler", "--poll-seconds", "60"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        health: tuple[int, str] | None = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.3)
                continue
            if health[0] == 200:
                break
            time.sleep(0.3)
        assert health is not None and health[0] == 200, health
        expected = {"status": "degraded", "model_server": "down", "running_runs": []}
        assert json.loads(health[1]) == expected
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "# TYPE chatbot_retrain_runs_total counter" in text
        assert _samples(text)[("chatbot_retrain_running", ())] == 0
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        refusing.close()
    assert process.returncode == 0, stderr
    assert f"/healthz and /metrics on port {port}" in stderr
