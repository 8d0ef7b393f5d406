"""The model-server supervisor with a tiny stand-in server: restarts after a crash (re-reading
what to load), gives up on a crash loop, and refuses a server that never comes up."""

from __future__ import annotations

import sys
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from model_server import launch
from tests.support.model_servers import free_port

# Serves /health; exits with status 3 once it has been asked `crash_after` times.
FAKE_SERVER = """
import http.server, os, sys
port, crash_after = int(sys.argv[1]), int(sys.argv[2])
seen = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global seen
        seen += 1
        self.send_response(200); self.end_headers()
        if crash_after and seen >= crash_after:
            os._exit(3)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _launcher(script: Path, port: int, crash_plan: list[int], starts: list[int]):  # type: ignore[no-untyped-def]
    def make_launch() -> launch.Launch:
        starts.append(1)
        crash_after = crash_plan[min(len(starts), len(crash_plan)) - 1]
        return [sys.executable, str(script), str(port), str(crash_after)], {}

    return make_launch


def test_a_crashed_server_is_restarted(tmp_path: Path) -> None:
    script = tmp_path / "fake.py"
    script.write_text(FAKE_SERVER)
    port, starts, stop = free_port(), [], threading.Event()
    url = f"http://127.0.0.1:{port}"
    # first start dies right after its health check; the second keeps running
    make_launch = _launcher(script, port, [1, 0], starts)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(launch.run(make_launch, url, stop=stop)))
    thread.start()
    try:
        for _ in range(100):
            if len(starts) == 2:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            stop.wait(0.1)
        assert len(starts) == 2
    finally:
        stop.set()
        thread.join(timeout=60)
    assert result and not thread.is_alive()


def test_a_crash_loop_gives_up(tmp_path: Path) -> None:
    script = tmp_path / "fake.py"
    script.write_text(FAKE_SERVER)
    port, starts = free_port(), []
    make_launch = _launcher(script, port, [1], starts)
    with pytest.raises(launch.LaunchError, match="crashed 3 times"):
        launch.run(make_launch, f"http://127.0.0.1:{port}", max_restarts=2, stop=threading.Event())
    assert len(starts) == 3


def test_a_server_that_never_starts_is_reported(tmp_path: Path) -> None:
    def make_launch() -> launch.Launch:
        return [sys.executable, "-c", "import sys; sys.exit(7)"], {}

    with pytest.raises(launch.LaunchError, match="exited with status 7"):
        launch.run(make_launch, f"http://127.0.0.1:{free_port()}", stop=threading.Event())


def test_backend_choice() -> None:
    assert launch.choose_backend("auto", None) == "transformers"
    assert launch.choose_backend("auto", Path("/x/python")) == "vllm"
    with pytest.raises(launch.LaunchError, match="make vllm"):
        launch.choose_backend("vllm", None)


def test_the_vllm_command_and_environment() -> None:
    spec = launch.ServerSpec(model_dir=Path("/models/base"), url="http://127.0.0.1:8123", max_loras=3)
    command = launch.vllm_command(Path("/venv/bin/python"), spec)
    # vLLM's server through vllm_serve.py, run by path (vLLM's Python has none of our packages)
    assert command[:3] == ["/venv/bin/python", str(launch.VLLM_SERVE), "--enable-lora"]
    assert launch.VLLM_SERVE.is_file() and launch.VLLM_SERVE.is_absolute()
    stock = launch.vllm_command(Path("/venv/bin/python"), replace(spec, grouped_lora_ops=False))
    assert stock[:4] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--enable-lora"]
    assert stock[4:] == command[3:]
    assert command[command.index("--port") + 1] == "8123"
    assert command[command.index("--max-cpu-loras") + 1] == "4"  # active + candidate + previous + 1
    env = launch.vllm_environment(kv_cache_gib=3)
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    # the worker runs inside the engine process: one process fewer to start (python -m bench.startup)
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_vllm_dtype_follows_the_cpu(tmp_path: Path) -> None:
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t: fpu avx2\n")
    bf16 = tmp_path / "bf16"
    bf16.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    # a CPU that would emulate bfloat16 computes in float32; one with the instructions keeps the model's
    assert launch.vllm_dtype("auto", cpuinfo=avx2, gpu=False) == "float32"
    assert launch.vllm_dtype("auto", cpuinfo=bf16, gpu=False) == "auto"
    assert launch.vllm_dtype("auto", cpuinfo=avx2, gpu=True) == "auto"  # a GPU does its own
    assert launch.vllm_dtype("auto", cpuinfo=tmp_path / "missing", gpu=False) == "auto"
    assert launch.vllm_dtype("bfloat16", cpuinfo=avx2, gpu=False) == "bfloat16"  # a choice stands


def test_the_vllm_command_carries_the_dtype() -> None:
    spec = launch.ServerSpec(model_dir=Path("/models/base"), url="http://127.0.0.1:8123", dtype="float16")
    command = launch.vllm_command(Path("/venv/bin/python"), spec)
    assert command[command.index("--dtype") + 1] == "float16"
    automatic = launch.vllm_command(Path("/venv/bin/python"), launch.ServerSpec(Path("/m"), "http://h:1"))
    assert automatic[automatic.index("--dtype") + 1] == launch.vllm_dtype("auto")


def test_training_is_bfloat16_only_for_a_bfloat16_model_on_hardware_that_computes_it(tmp_path: Path) -> None:
    avx2, bf16 = tmp_path / "avx2", tmp_path / "bf16"
    avx2.write_text("flags\t: fpu sse avx2\n")
    bf16.write_text("flags\t: fpu sse avx2 avx512_bf16 amx_bf16\n")
    stored_bf16, stored_fp32 = tmp_path / "qwen", tmp_path / "smol"
    for folder, dtype in ((stored_bf16, "bfloat16"), (stored_fp32, "float32")):
        folder.mkdir()
        (folder / "config.json").write_text(f'{{"dtype": "{dtype}"}}')
    assert launch.training_dtype(stored_bf16, cpuinfo=bf16, gpu=False) == "bfloat16"
    assert launch.training_dtype(stored_bf16, cpuinfo=avx2, gpu=False) == "float32"
    assert launch.training_dtype(stored_bf16, cpuinfo=avx2, gpu=True) == "bfloat16"
    assert launch.training_dtype(stored_fp32, cpuinfo=bf16, gpu=True) == "float32"
    assert launch.training_dtype(tmp_path / "missing", cpuinfo=bf16, gpu=False) == "float32"
