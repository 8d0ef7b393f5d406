"""`chatbot ask` through a running `chatbot model-server`, as a user would run them: real
processes, the real embedder over the sample knowledge base, the real SmolLM2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.knowledge.embedder import load_embedder
from bot.knowledge.kb import KnowledgeBase
from chatbot.wiring import SAMPLE_DIR
from feedback import migrate
from model_server import launch
from tests.support.model_servers import free_port
from tests.support.paths import TEST_CACHE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = TEST_CACHE / "e2e"
    # The real index over the sample documents; ingestion is incremental, so later runs are quick.
    KnowledgeBase.open(data / "index", load_embedder()).ingest([SAMPLE_DIR / "docs"], progress=False)
    # A store of its own: the module's processes share it across tests, and `database` is per test.
    db_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'chatbot.db'}"
    migrate.upgrade(db_url)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MODEL_", "DATA_DIR"))}
    return {
        **keep,
        "DATA_DIR": str(data),
        "DATABASE_URL": db_url,
        "BASE_MODEL": str(base_model_dir),
        "MODEL_SERVER_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_BACKEND": "transformers",
    }


@pytest.fixture(scope="module")
def model_server(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path_factory.mktemp("logs") / "model-server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "model-server"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        launch.wait_healthy(env["MODEL_SERVER_URL"], process, timeout=300)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        log.close()


def ask(env: dict[str, str], question: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatbot", "ask", "--json", question],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ask_answers_from_the_documents_with_sources(env: dict[str, str], model_server: object) -> None:
    result = ask(env, "How many days of annual leave do I get per year?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) == {"answer", "sources", "adapter", "confidence"}
    assert answer["answer"].strip() and answer["adapter"] == "base"
    assert 0 < answer["confidence"] <= 1
    assert answer["sources"] and answer["sources"][0]["title"].startswith("Annual Leave")
    assert all(set(s) == {"title", "source", "score"} for s in answer["sources"])


def test_a_question_the_documents_do_not_cover(env: dict[str, str], model_server: object) -> None:
    result = ask(env, "What is the boiling point of tungsten?")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["sources"] == [] and "couldn't find that in the company documents" in answer["answer"]


def test_stopping_the_model_server_gives_a_clear_message(
    env: dict[str, str], model_server: subprocess.Popen[bytes]
) -> None:
    model_server.send_signal(signal.SIGTERM)
    assert model_server.wait(timeout=60) == 0  # a clean stop, not a crash
    result = ask(env, "How many days of annual leave do I get per year?")
    assert result.returncode == 1
    assert "can't reach my language model" in result.stderr and "Traceback" not in result.stderr
