"""Giving freed memory back to the system between training steps.

Each step allocates and frees activations whose size follows the conversation's length. glibc keeps
what is freed inside its heap for reuse, so on a CPU the retrain's resident memory ratchets up to the
sum of its largest steps, beside a model server that needs its own share of the same RAM.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any

from transformers import TrainerCallback


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim_heap() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot (not glibc)."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class TrimHeapEachStep(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trim_heap()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trim_heap()
