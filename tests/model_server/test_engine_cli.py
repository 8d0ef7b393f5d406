"""`python -m model_server.engine` as an operator runs it: flags, start-up adapters, per-request log
lines, and a SIGTERM that lets the running request finish before the process exits cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.lora import make_lora

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the engine exited early:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the engine did not become healthy:\n{log.read_text()[-3000:]}")


def test_cli_serves_startup_adapters_and_stops_gracefully(base_model_dir: Path, tmp_path: Path) -> None:
    adapter = make_lora(base_model_dir, tmp_path / "kb-v1")
    port, log = free_port(), tmp_path / "engine.log"
    command = [
        sys.executable, "-m", "model_server.engine", "--model", str(base_model_dir),
        "--served-model-name", "base", "--host", "127.0.0.1", "--port", str(port),
        "--max-loras", "2", "--max-lora-rank", "16", "--lora-modules", f"kb-v1={adapter}", "--max-batch", "4",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, process, log)
        models = httpx.get(f"{url}/v1/models").json()["data"]
        assert [(m["id"], m["parent"], m["root"]) for m in models] == [
            ("base", None, str(base_model_dir)),
            ("kb-v1", "base", str(adapter)),
        ]

        started, events = threading.Event(), []

        def stream() -> None:
            body = {"model": "kb-v1", "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 24}
            body |= {"temperature": 0, "ignore_eos": True, "stream": True}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(line.removeprefix("data: "))
                        started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(120)
        process.send_signal(signal.SIGTERM)  # while the answer is still being generated
        reader.join(300)

        assert process.wait(timeout=120) == 0
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert len(chunks) == 1 + 24  # the role chunk, then one chunk per token: nothing was cut off
        assert "chat model=kb-v1 prompt_tokens=" in log.read_text()
        assert "completion_tokens=24" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
