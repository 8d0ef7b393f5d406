"""retrain.heap: memory a training step freed leaves the process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from retrain.heap import trim_heap


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_freed_heap_memory_goes_back_to_the_system() -> None:
    if not Path("/proc/self/status").exists() or not trim_heap():
        pytest.skip("needs Linux with glibc's malloc_trim")
    # 64 KB blocks come from the heap; keeping every 8th one pins it, as a step's survivors do.
    # One thread: with OpenMP workers filling them, what glibc holds where varies from run to run.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        blocks = [torch.ones(16 * 1024) for _ in range(4000)]
    finally:
        torch.set_num_threads(threads)
    kept = blocks[::8]
    del blocks
    before = _rss()
    assert trim_heap()
    assert before - _rss() > 100e6, "the 220 MB freed stayed resident"
    assert len(kept) == 500
