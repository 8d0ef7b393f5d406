"""`chatbot model-server`'s supervision with the real engine: when the server process dies it is
started again, and the adapters SQL says should serve (the active one and the previous one, for
rollback) are loaded again without anyone's help."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from chatbot.cmd_model import launcher, reconciler
from chatbot.settings import get_settings
from feedback import store
from feedback.db import Database
from model_server import launch
from model_server.client import ModelClient
from retrain import promote
from tests.support.lora import make_lora
from tests.support.model_servers import free_port

pytestmark = pytest.mark.slow


def _eventually(check: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(1.0)
    raise AssertionError("condition not reached in time")


def _engine_process() -> psutil.Process:
    children = psutil.Process().children(recursive=True)
    return next(p for p in children if "model_server.engine" in " ".join(p.cmdline()))


def test_a_killed_server_comes_back_with_the_active_and_previous_adapters(
    database: Database, base_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    db_url = database.url
    for name, value in {
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": db_url,
        "MODEL_SERVER_URL": url,
        "BASE_MODEL": str(base_model_dir),
        "KEEP_LOADED_ADAPTERS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    for n in (1, 2):
        path = make_lora(base_model_dir, tmp_path / "adapters" / f"kb-v{n}", seed=n)
        with database.writer() as session:
            store.register_adapter(session, name=f"kb-v{n}", path=str(path), base_model="smollm2")
    with database.writer() as session:  # active in SQL before the server ever started
        store.activate_adapter(session, name="kb-v1", actor="test")

    stop = threading.Event()
    thread = threading.Thread(
        target=launch.run,
        args=(launcher(settings, base_model_dir, "transformers", None), url),
        kwargs={"stop": stop, "on_healthy": reconciler(settings), "every_s": 5.0},
    )
    thread.start()
    client = ModelClient(url, retries=0)
    try:
        _eventually(lambda: "kb-v1" in client.models())  # loaded at start, from SQL
        promote.promote(database, client, name="kb-v2", actor="test")  # loaded at runtime
        first = _engine_process()

        first.kill()  # the server dies: everything loaded at runtime is gone with it
        first.wait(timeout=30)
        _eventually(lambda: {"kb-v1", "kb-v2"} <= set(client.models()))
        assert _engine_process().pid != first.pid
        answer = client.chat([{"role": "user", "content": "Hello"}], model="kb-v2", max_tokens=3)
        assert answer.model == "kb-v2" and answer.text
    finally:
        client.close()
        stop.set()
        thread.join(timeout=90)
    assert not thread.is_alive()
