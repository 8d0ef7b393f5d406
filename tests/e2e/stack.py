"""The product as `make run` starts it, for the end-to-end tests: honcho runs the `Procfile`'s
model server, bot and scheduler as real processes in a fresh DATA_DIR (SQLite), with Slack's Web
API pointed at a local `SlackServer` (tests/support/slack_api.py) running in a thread of its own.

`Stack` speaks to the bot as Slack does (signed events, interactions and slash commands over
HTTP) and reads what the bot sent back from the local Slack; `stop()` sends honcho the SIGINT that
Ctrl-C would, and reports every process of the tree that outlived it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from bot.knowledge.embedder import load_embedder
from bot.knowledge.kb import KnowledgeBase
from chatbot.wiring import SAMPLE_DIR
from tests.support.model_servers import free_port, vllm_python
from tests.support.paths import REPO, TEST_CACHE
from tests.support.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM, SlackServer
from tests.support.slack_payloads import event_callback, signature_headers, slash_command

ADMIN, REVIEWER, ADMIN_TOKEN = "UADMIN", "UREVIEW", "e2e-admin-token"
REVIEW_CHANNEL, ADMIN_CHANNEL = "CREVIEW", "CADMINS"
BIN = REPO / ".venv" / "bin"
T = TypeVar("T")
Payload = dict[str, Any]


def sample_index(data_dir: Path) -> None:
    """The sample documents' index, embedded once into the test cache (incremental afterwards) and
    copied: approved corrections are written into the copy, never the cache."""
    cached = TEST_CACHE / "e2e" / "index"
    KnowledgeBase.open(cached, load_embedder()).ingest([SAMPLE_DIR / "docs"], progress=False)
    shutil.copytree(cached, data_dir / "index")


def environment(data: Path, *, slack_api_url: str, bot_port: int, **extra: str) -> dict[str, str]:
    """What the three processes see. The sample documents are the knowledge, but not the sample
    question set (SAMPLE_KNOWLEDGE=false): the retrain learns from this run's feedback alone."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SLACK_", "MICROSOFT_"))}
    python = vllm_python()
    return {
        **keep,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "ENVIRONMENT": "development",
        "DATA_DIR": str(data),
        # the smallest catalog model: the e2e run checks the loop's mechanics, and retrains in minutes
        "BASE_MODEL": "smollm2-135m-instruct",
        "SAMPLE_KNOWLEDGE": "false",
        "MODEL_SERVER_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_BACKEND": "vllm" if python else "transformers",
        "VLLM_PYTHON": str(python or ""),
        "VLLM_KV_CACHE_GIB": "1",
        # Short prompts (one or two passages) keep training and the gate quick on two CPU cores.
        "MAX_MODEL_LEN": "512",
        "PORT": str(bot_port),
        "SCHEDULER_PORT": str(free_port()),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        "ADMIN_USERS": ADMIN,
        "REVIEWERS": REVIEWER,
        "REVIEW_CHANNEL": REVIEW_CHANNEL,
        "ADMIN_CHANNEL": ADMIN_CHANNEL,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        # A passing candidate takes all traffic at once here; test_canary.py runs it as a canary.
        "CANARY_SHARE": "0",
        **extra,
    }


class SlackThread:
    """A `SlackServer` on an event loop in its own thread, so the tests can stay synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = SlackServer()

    def __enter__(self) -> SlackServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(None, None, None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def wait(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc (honcho, the shells, vLLM's engine and workers...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class SlackSide:
    """Requests to the bot at `bot_url` as Slack sends them; what the bot sent back is in `slack`."""

    slack: SlackServer

    @property
    def bot_url(self) -> str:
        raise NotImplementedError

    def post(self, body: str, content_type: str) -> httpx.Response:
        headers = signature_headers(body, content_type=content_type)
        return httpx.post(f"{self.bot_url}/slack/events", content=body.encode(), headers=headers, timeout=10)

    def event(self, event: Payload) -> httpx.Response:
        return self.post(json.dumps(event_callback(event)), "application/json")

    def interaction(self, payload: Payload) -> httpx.Response:
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def command(self, text: str, *, user: str, channel: str = "C1", timeout: float = 30) -> str:
        """`/chatbot TEXT` from `user`: the reply sent through response_url (admin commands)."""
        before = len(self.slack.responses)
        form = slash_command(
            "/chatbot",
            text,
            user=user,
            channel=channel,
            slack_port=self.slack.port,
            trigger_id=f"{time.time()}.{TEAM}",
        )
        ack = self.post(urlencode(form), "application/x-www-form-urlencoded")
        assert ack.status_code == 200 and ack.json()["text"].startswith("Working on"), ack.text
        replies = wait(f"/chatbot {text}", lambda: self.slack.responses[before:], timeout)
        return str(replies[0]["text"])

    def calls(self, method: str, count: int = 1, timeout: float = 30, **match: Any) -> list[Payload]:
        return wait(
            f"{method} x{count} {match}",
            lambda: (found := self.slack.called(method, **match)) and len(found) >= count and found,
            timeout,
            every=0.1,
        )


@dataclass
class Stack(SlackSide):
    env: dict[str, str]
    slack: SlackServer
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    tree: set[int] = field(default_factory=set)

    @property
    def bot_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    @property
    def model_url(self) -> str:
        return self.env["MODEL_SERVER_URL"]

    @property
    def scheduler_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SCHEDULER_PORT']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> None:
        """`make run`'s last step: honcho starts the Procfile (with no .env of the developer's)."""
        empty_env = self.log_path.with_name("empty.env")
        empty_env.write_text("")
        command = [str(BIN / "honcho"), "start", "--no-colour", "-f", str(REPO / "Procfile")]
        command += ["-d", str(self.log_path.parent), "-e", str(empty_env), "--port", self.env["PORT"]]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> None:
        for what, url in (
            ("the bot's /healthz", f"{self.bot_url}/healthz"),
            ("the scheduler's /healthz", f"{self.scheduler_url}/healthz"),
            ("the model server's /health", f"{self.model_url}/health"),
        ):
            try:
                wait(what, lambda url=url: self.running() and healthy(url), timeout)  # type: ignore[misc]
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- honcho's output ---\n{self.log()[-6000:]}") from None

    def running(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"honcho exited early\n--- output ---\n{self.log()[-6000:]}")
        self.tree |= descendants(self.process.pid)
        return True

    def stop(self, timeout: float = 60) -> tuple[int, list[int]]:
        """Ctrl-C: SIGINT to honcho. Its exit status, and the processes of its tree still alive."""
        assert self.process is not None
        if self.process.poll() is None:
            self.tree |= descendants(self.process.pid)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        left = sorted(pid for pid in self.tree if alive(pid))
        for pid in left:  # never leave them behind for the next test
            os.kill(pid, signal.SIGKILL)
        return self.process.wait(), left


@contextmanager
def running_stack(tmp: Path, **extra: str) -> Iterator[Stack]:
    data = tmp / "data"
    data.mkdir(parents=True)
    (data / "models").symlink_to(TEST_CACHE / "models", target_is_directory=True)  # prepared once
    sample_index(data)
    with SlackThread() as slack:
        env = environment(data, slack_api_url=slack.api_url, bot_port=free_port(), **extra)
        setup = subprocess.run(
            [str(BIN / "chatbot"), "setup"], env=env, cwd=tmp, capture_output=True, text=True, timeout=300
        )
        assert setup.returncode == 0, setup.stderr
        stack = Stack(env, slack, tmp / "honcho.log")
        try:
            yield stack
        finally:
            stack.stop()
