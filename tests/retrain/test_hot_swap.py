"""A hot swap under load: bot-like workers keep asking, each time sending the adapter the bot's
own `active_model` reads from SQL, while an adapter is promoted and then rolled back. No request
may fail, and after each flip the answers come from the new adapter. Against real vLLM (and the
embedded engine)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot.wiring import active_model
from feedback import store
from feedback.db import Database
from model_server.client import ModelClient
from retrain import promote
from tests.support.lora import make_lora
from tests.support.model_servers import NO_VLLM, running_server, vllm_python

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "How many days of annual leave do I get?"}]
TTL = 0.3  # how long a bot replica caches the active adapter's name


@pytest.fixture(scope="module", params=["engine", pytest.param("vllm", marks=pytest.mark.vllm)])
def server(
    request: pytest.FixtureRequest, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "vllm" and vllm_python() is None:
        pytest.skip(NO_VLLM)
    log = tmp_path_factory.mktemp("logs") / f"{request.param}.log"
    with running_server(request.param, base_model_dir, log, max_loras=3) as url:
        yield url


class _Workers:
    """Threads asking like bot replicas; every answer and every failure is kept with its time."""

    def __init__(self, url: str, database: Database, count: int) -> None:
        self.stop = threading.Event()
        self.answers: list[tuple[float, str, str]] = []  # (sent at, adapter asked, model answering)
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._ask, args=(url, database)) for _ in range(count)]

    def __enter__(self) -> _Workers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=300)

    def _ask(self, url: str, database: Database) -> None:
        model_name = active_model(database, "base", ttl=TTL)
        with ModelClient(url, timeout=300) as client:
            while not self.stop.is_set():
                sent, name = time.monotonic(), model_name()
                try:
                    result = client.chat(QUESTION, model=name, max_tokens=8, logprobs=True)
                    with self._lock:
                        self.answers.append((sent, name, result.model))
                except Exception as exc:
                    with self._lock:
                        self.failures.append(f"{name}: {type(exc).__name__}: {exc}")

    def wait_for(self, count: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answers) < count and time.monotonic() < deadline and not self.failures:
            time.sleep(0.1)


def test_promote_and_rollback_under_concurrent_questions(
    server: str, database: Database, base_model_dir: Path, tmp_path: Path
) -> None:
    prefix = f"swap{tmp_path.name[-6:]}".replace("_", "")
    v1, v2 = f"{prefix}-v1", f"{prefix}-v2"
    for n, name in ((1, v1), (2, v2)):
        path = make_lora(base_model_dir, tmp_path / name, seed=n)
        with database.writer() as session:
            store.register_adapter(session, name=name, path=str(path), base_model="smollm2")
    client = ModelClient(server, timeout=300)
    try:
        promote.promote(database, client, name=v1, actor="test")
        with _Workers(server, database, count=4) as workers:
            workers.wait_for(8)
            promote.promote(database, client, name=v2, actor="test")
            flipped = time.monotonic()
            workers.wait_for(len(workers.answers) + 8)
            promote.rollback(database, client, actor="test")
            rolled_back = time.monotonic()
            workers.wait_for(len(workers.answers) + 8)
        answers, failures = list(workers.answers), list(workers.failures)
    finally:
        client.close()

    assert not failures, failures[:3]
    assert all(asked == answered for _, asked, answered in answers)  # each answer from what was asked
    assert {name for _, name, _ in answers} == {v1, v2}
    # once the cached name expired, every question went to the newly active adapter
    assert all(name == v2 for sent, name, _ in answers if flipped + TTL < sent < rolled_back)
    assert any(name == v2 for sent, name, _ in answers if flipped + TTL < sent < rolled_back)
    assert all(name == v1 for sent, name, _ in answers if sent > rolled_back + TTL)
    assert any(name == v1 for sent, name, _ in answers if sent > rolled_back + TTL)
