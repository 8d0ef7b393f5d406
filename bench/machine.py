"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

from model_server.launch import bf16_cpu_flags


def describe() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor()
    )
    return {
        "cpu": cpu,
        # whether the CPU computes in bfloat16 itself (vLLM's speed in bfloat16 depends on it)
        "bfloat16_instructions": sorted(bf16_cpu_flags(cpuinfo) or ()),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def tree_rss(pid: int, *, descendants: bool = True) -> int:
    """Resident bytes of a process and all its descendants (vLLM runs its engine in a child)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        proc = Path(f"/proc/{current}")
        try:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            if not descendants:
                break
            for task in (proc / "task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except OSError:
            continue
    return total


class PeakRss:
    """The largest `tree_rss(pid)` seen, sampled every `interval` seconds while inside `with`; every
    `keep_every`-th sample is kept in `timeline` (seconds since start, bytes) to show where it peaked."""

    def __init__(
        self, pid: int, interval: float = 1.0, keep_every: int = 10, *, descendants: bool = True
    ) -> None:
        self.pid, self.interval, self.keep_every, self.peak = pid, interval, keep_every, 0
        self.descendants = descendants
        self.timeline: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        started, count = time.monotonic(), 0
        while True:
            now = tree_rss(self.pid, descendants=self.descendants)
            self.peak = max(self.peak, now)
            if count % self.keep_every == 0:
                self.timeline.append((round(time.monotonic() - started, 1), now))
            count += 1
            if self._stop.wait(self.interval):
                return

    def timeline_gb(self) -> list[list[float]]:
        return [[t, round(rss / 1e9, 2)] for t, rss in self.timeline]

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> PeakRss:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
