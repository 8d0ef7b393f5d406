"""The scheduler's own small HTTP server on SCHEDULER_PORT: `/healthz` and Prometheus `/metrics`.

    chatbot_retrain_runs_total{status}     runs this scheduler finished: promoted, rejected, skipped, failed
    chatbot_retrain_run_seconds{status}    how long each took, started to finished
    chatbot_retrain_running                runs this scheduler is working on now (0 or 1)

`GET /healthz` answers 200 {"status": "ok", "model_server": "up", "running_runs": [...]} while the
scheduler runs its jobs ("degraded" and "down" while the model server does not answer), 503 once it
has stopped. The server runs in a daemon thread beside APScheduler's blocking loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from feedback.models import RetrainRun
from retrain.schedule import Notify

log = logging.getLogger(__name__)

# Retrains take minutes on a CPU, seconds when there is nothing to learn.
DURATION_BUCKETS = (1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
Health = Callable[[], dict[str, Any]]


class SchedulerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "chatbot_retrain_runs",
            "Retrain runs this scheduler finished, by outcome.",
            ["status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "chatbot_retrain_run_seconds",
            "Seconds a retrain run took, started to finished.",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.running = Gauge(
            "chatbot_retrain_running",
            "Retrain runs this scheduler is working on now.",
            registry=self.registry,
        )

    def observe(self, run: RetrainRun) -> None:
        self.runs.labels(status=run.status).inc()
        if run.started_at is not None and run.finished_at is not None:
            seconds = (run.finished_at - run.started_at).total_seconds()
            self.duration.labels(status=run.status).observe(max(seconds, 0.0))

    def counting(self, notify: Notify | None) -> Notify:
        """A notifier that counts each finished run, then tells `notify` (the admin channel)."""

        def told(run: RetrainRun, loss_curve: Path | None) -> None:
            self.observe(run)
            if notify is not None:
                notify(run, loss_curve)

        return told

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MonitorServer:
    """`/healthz` and `/metrics` on `port` (0: any free port, as tests use)."""

    def __init__(
        self, metrics: SchedulerMetrics, health: Health, *, host: str = "0.0.0.0", port: int
    ) -> None:
        self.metrics, self.health = metrics, health
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="scheduler-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> MonitorServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: MonitorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                state = server.health()
                ok = state.get("status") in ("ok", "degraded")
                self._send(200 if ok else 503, "application/json", json.dumps(state).encode())
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_PLAIN_0_0_4, server.metrics.render())
            else:
                self._send(404, "text/plain", b"The scheduler serves /healthz and /metrics.\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s: not worth a line
            log.debug(format, *args)

    return Handler


def start_monitor(metrics: SchedulerMetrics, health: Health, *, port: int) -> MonitorServer | None:
    """Serve on `port`, or None (logged) when it is 0 or taken: scheduling matters more than its
    metrics, so a second scheduler on the same host still runs."""
    if port == 0:
        log.info("SCHEDULER_PORT=0: the scheduler serves no /healthz or /metrics")
        return None
    try:
        server = MonitorServer(metrics, health, port=port).start()
    except OSError as exc:
        log.error(
            "the scheduler cannot listen on SCHEDULER_PORT=%d (%s): /healthz and /metrics are off; "
            "set SCHEDULER_PORT to a free port (or 0) for each scheduler on this host",
            port,
            exc.strerror or exc,
        )
        return None
    log.info("scheduler: /healthz and /metrics on port %d", server.port)
    return server
