"""The product scaled out as deploy/Procfile.replicas describes it, for the end-to-end tests: each of
its lines (two model servers, two bots, one scheduler) started as a process of its own, as separate
hosts or a service manager would start them, so one can be killed while the others go on (honcho
would stop them all). They share a PostgreSQL database made for the test and a DATA_DIR; Slack is
the local `SlackServer` of `tests.e2e.stack`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.e2e.stack import SlackSide, SlackThread, environment, healthy, sample_index, wait
from tests.support.model_servers import free_port
from tests.support.paths import REPO, TEST_CACHE
from tests.support.slack_api import SlackServer

PROCFILE = REPO / "deploy" / "Procfile.replicas"
BIN = REPO / ".venv" / "bin"
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def procfile(path: Path = PROCFILE) -> dict[str, str]:
    """name -> command, as honcho reads a Procfile."""
    lines = (re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line) for line in path.read_text().splitlines())
    return {m.group(1): m.group(2) for m in lines if m}


def postgres_reachable() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any driver error: the test is skipped saying so
        return f"no PostgreSQL at {POSTGRES} ({type(exc).__name__}); CI starts one"
    return None


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, dropped afterwards."""
    import sqlalchemy

    name = f"e2e_{uuid.uuid4().hex[:8]}"
    server = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = sqlalchemy.engine.make_url(POSTGRES).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()


@dataclass
class Cluster(SlackSide):
    """`target`: which bot `SlackSide`'s requests go to (0: bot-a, 1: bot-b), as a load balancer
    would choose."""

    env: dict[str, str]
    slack: SlackServer
    logs: Path
    target: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _files: list[IO[bytes]] = field(default_factory=list)

    @property
    def bots(self) -> list[str]:
        return [f"http://127.0.0.1:{self.env[k]}" for k in ("BOT_A_PORT", "BOT_B_PORT")]

    @property
    def bot_url(self) -> str:
        return self.bots[self.target]

    @property
    def model_servers(self) -> list[str]:
        return self.env["MODEL_SERVER_REPLICAS"].split(",")

    def start(self, names: list[str] | None = None) -> None:
        for name, command in procfile().items():
            if names is None or name in names:
                out = (self.logs / f"{name}.log").open("ab")
                self._files.append(out)
                self.processes[name] = subprocess.Popen(
                    ["/bin/sh", "-c", command],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed with everything below it
                )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n)[-chars:]}" for n in self.processes)

    def wait_ready(self, timeout: float = 420) -> None:
        scheduler = f"http://127.0.0.1:{self.env['SCHEDULER_PORT']}/healthz"
        urls = [f"{u}/healthz" for u in self.bots] + [f"{u}/health" for u in self.model_servers] + [scheduler]
        for url in urls:
            try:
                wait(url, lambda url=url: self.running() and healthy(url), timeout)  # type: ignore[misc]
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.logs_tail()}") from None

    def running(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.logs_tail()}")
        return True

    def kill(self, name: str) -> None:
        """SIGKILL to the process and everything it started: no chance to finish anything."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, timeout: float = 60) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for out in self._files:
            out.close()


@contextmanager
def running_cluster(tmp: Path, database_url: str, **extra: str) -> Iterator[Cluster]:
    data = tmp / "data"
    data.mkdir(parents=True)
    (data / "models").symlink_to(TEST_CACHE / "models", target_is_directory=True)
    sample_index(data)
    logs = tmp / "logs"
    logs.mkdir()
    with SlackThread() as slack:
        ports = {k: str(free_port()) for k in ("MODEL_A_PORT", "MODEL_B_PORT", "BOT_A_PORT", "BOT_B_PORT")}
        replicas = ",".join(f"http://127.0.0.1:{ports[k]}" for k in ("MODEL_A_PORT", "MODEL_B_PORT"))
        env = environment(
            data,
            slack_api_url=slack.api_url,
            bot_port=int(ports["BOT_A_PORT"]),
            DATABASE_URL=database_url,
            MODEL_SERVER_REPLICAS=replicas,
            **ports,
            **extra,
        )
        setup = subprocess.run(
            [str(BIN / "chatbot"), "setup"], env=env, cwd=tmp, capture_output=True, text=True, timeout=300
        )
        assert setup.returncode == 0, setup.stderr
        cluster = Cluster(env, slack, logs)
        try:
            yield cluster
        finally:
            cluster.stop()
