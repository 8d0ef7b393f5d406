"""How much one retrain trains, so that a default run finishes in minutes on a 2-core CPU.

Two bounds, both recorded with the run:
  - `pick_training`: at most `limit` training examples. What users taught comes first –
    corrections (each with its grounded twin), then liked answers, newest first – and the sample
    question set fills what is left (in a stable order, so the same data gives the same pick). On
    2 cores a step of 8 served conversations (~6,000 tokens with their passages) takes about a
    minute, so the sample set's 180 questions alone would keep a retrain busy for hours.
  - `StopAtTimeBudget`: training ends after the last step that fits in the budget, measured on
    the steps done so far; the adapter trained until then is saved and goes through the gate.
    `budget_decay` plans the learning rate's linear decay over those steps, not over the epochs
    the budget would cut off: a run stopped at step 37 of 48 planned ended at a quarter of the peak
    rate, where a decay to zero settles what it learnt.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback

from retrain.dataset import Example

log = logging.getLogger(__name__)

# A correction's grounded twin ranks with it (same number, listed after it): a limit keeps pairs.
# Anything else (the sample set) fills the rest.
PRIORITY = {"correction": 0, "grounded": 0, "liked": 1}


def pick_training(examples: Sequence[Example], limit: int) -> tuple[list[Example], int]:
    """The examples to train on (at most `limit`; 0 means all) and how many were left out."""
    if limit <= 0 or len(examples) <= limit:
        return list(examples), 0
    taught = sorted(
        (e for e in examples if e.kind in PRIORITY), key=lambda e: (PRIORITY[e.kind], -_number(e.id))
    )
    filler = sorted((e for e in examples if e.kind not in PRIORITY), key=lambda e: _order(e.id))
    picked = (taught + filler)[:limit]
    return picked, len(examples) - len(picked)


def _number(example_id: str) -> int:
    """The row id in "correction:12" or "answer:7" (newer rows have larger ids)."""
    match = re.search(r"(\d+)$", example_id)
    return int(match.group(1)) if match else 0


def _order(example_id: str) -> str:
    # A stable shuffle: the sample set's own order groups questions by page.
    return hashlib.sha1(example_id.encode()).hexdigest()


class StopAtTimeBudget(TrainerCallback):
    """Ends training before the next step would finish past `seconds` (0: no budget)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.per_step: float | None = None  # seconds per step so far
        self.stopped_at_step: int | None = None

    def horizon(self, planned: int) -> int:
        """The steps this run will take: the planned ones, or as many as the budget lets it take at the
        pace of the steps so far (the planned ones until a step is done)."""
        if self.seconds <= 0 or not self.per_step:
            return planned
        return max(1, min(planned, int(self.seconds // self.per_step)))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.seconds <= 0 or self.started is None or not state.global_step:
            return
        elapsed = time.perf_counter() - self.started
        per_step = self.per_step = elapsed / state.global_step
        if elapsed + per_step > self.seconds and state.global_step < state.max_steps:
            log.info(
                "training stopped at step %d of %d: the time budget of %.0f s is spent",
                state.global_step,
                state.max_steps,
                self.seconds,
            )
            self.stopped_at_step = state.global_step
            control.should_training_stop = True


def budget_decay(optimizer: torch.optim.Optimizer, planned: int, budget: StopAtTimeBudget) -> LambdaLR:
    """Linear decay from the peak rate to zero at the step the budget is expected to stop at,
    re-estimated after every step (without a budget: at the last planned step, as "linear")."""
    return LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / budget.horizon(planned)))
