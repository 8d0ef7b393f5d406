"""Start a real model server for tests: the embedded engine, or vLLM from .venv-vllm.

Both go through `model_server.launch`, the code path `chatbot model-server` uses.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model_server import launch
from tests.support.paths import REPO

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
NO_VLLM = "vLLM's environment .venv-vllm is missing; `make vllm` creates it (CI does)"
# what tests and benchmarks ask a server: a short question, and one the size of the bot's
SHORT_QUESTION = [
    {"role": "user", "content": "Explain in a few sentences why regular backups matter for a company."}
]
WIKI_PAGE = REPO / "bot" / "knowledge" / "sample" / "docs" / "benefits-and-leave" / "annual-leave.md"


def wiki_question(n: int) -> list[dict[str, str]]:
    """A bot-sized prompt: about 850 tokens of wiki text, then question `n` (each one different, so
    no prefix cache answers it)."""
    text = WIKI_PAGE.read_text()[:3000]
    return [
        {"role": "system", "content": f"Answer from the documents below.\n\nDocuments:\n[{n}] {text}"},
        {"role": "user", "content": f"Question {n}: how many days of leave do I get?"},
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vllm_python() -> Path | None:
    return launch.find_vllm_python(str(VLLM_PYTHON))


@contextmanager
def running_server(
    backend: str, model_dir: Path, log_path: Path, env: dict[str, str] | None = None, **spec_args: object
) -> Iterator[str]:
    """Yield the base URL of a healthy server; stop it afterwards. `env` overrides the backend's
    environment (a benchmark trying vLLM's other settings)."""
    with running_server_process(backend, model_dir, log_path, env, **spec_args) as (url, _):
        yield url


@contextmanager
def running_server_process(
    backend: str, model_dir: Path, log_path: Path, env: dict[str, str] | None = None, **spec_args: object
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The same, yielding the server's process too (a benchmark reads its memory)."""
    spec = launch.ServerSpec(model_dir=model_dir, url=f"http://127.0.0.1:{free_port()}", **spec_args)  # type: ignore[arg-type]
    if backend == "vllm":
        python = vllm_python()
        assert python is not None, NO_VLLM
        command, backend_env = launch.vllm_command(python, spec), launch.vllm_environment(kv_cache_gib=1)
    else:
        command, backend_env = launch.engine_command(spec), {}
    import os

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **backend_env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            launch.wait_healthy(spec.url, process, timeout=300)
            yield spec.url, process
        except launch.LaunchError as exc:
            raise AssertionError(f"{exc}\n--- server log ---\n{log_path.read_text()[-4000:]}") from exc
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
