"""A retrain's bounds: which examples it trains on, and training stopped at its time budget."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from retrain.budget import StopAtTimeBudget, budget_decay, pick_training
from retrain.dataset import Example


def _example(example_id: str, kind: str) -> Example:
    return Example(example_id, kind, [{"role": "user", "content": example_id}], "answer")


def test_feedback_first_then_the_sample_set_fills_up() -> None:
    examples = [
        *(_example(f"sample:q{i}", "sample") for i in range(10)),
        _example("answer:3", "liked"),
        _example("correction:1", "correction"),
        _example("answer:9", "liked"),
        _example("correction:2", "correction"),
    ]
    picked, left_out = pick_training(examples, 6)
    assert [e.id for e in picked[:4]] == ["correction:2", "correction:1", "answer:9", "answer:3"]
    assert [e.kind for e in picked[4:]] == ["sample", "sample"] and left_out == 8
    # the same data gives the same pick, whatever order the examples came in
    again, _ = pick_training(list(reversed(examples)), 6)
    assert [e.id for e in again] == [e.id for e in picked]


def test_newest_feedback_wins_when_there_is_more_than_the_limit() -> None:
    examples = [_example(f"correction:{i}", "correction") for i in range(1, 6)]
    picked, left_out = pick_training(examples, 3)
    assert [e.id for e in picked] == ["correction:5", "correction:4", "correction:3"] and left_out == 2


def test_a_correction_and_its_grounded_twin_are_kept_together() -> None:
    examples = [
        *(_example(f"grounded:{i}", "grounded") for i in range(1, 4)),
        *(_example(f"correction:{i}", "correction") for i in range(1, 4)),
        _example("answer:7", "liked"),
    ]
    picked, left_out = pick_training(examples, 4)
    assert sorted(e.id for e in picked) == ["correction:2", "correction:3", "grounded:2", "grounded:3"]
    assert [e.id.split(":")[1] for e in picked] == ["3", "3", "2", "2"] and left_out == 3


@pytest.mark.parametrize("limit", [0, 20])
def test_no_limit_or_room_for_everything_keeps_all(limit: int) -> None:
    examples = [_example("sample:a", "sample"), _example("correction:1", "correction")]
    picked, left_out = pick_training(examples, limit)
    assert picked == examples and left_out == 0


def _step(callback: StopAtTimeBudget, step: int, max_steps: int = 10) -> bool:
    control = SimpleNamespace(should_training_stop=False)
    callback.on_step_end(None, SimpleNamespace(global_step=step, max_steps=max_steps), control)
    return control.should_training_stop


def test_the_time_budget_stops_before_a_step_that_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 130.0, 160.0, 190.0])  # steps of 30 s
    monkeypatch.setattr("retrain.budget.time.perf_counter", lambda: next(clock))
    callback = StopAtTimeBudget(100.0)
    callback.on_train_begin(None, None, None)
    assert not _step(callback, 1)  # 30 s spent, the next ends at 60
    assert not _step(callback, 2)  # 60 s spent, the next ends at 90
    assert _step(callback, 3)  # 90 s spent, the next would end at 120
    assert callback.stopped_at_step == 3


def test_no_budget_and_the_last_step_never_stop_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("retrain.budget.time.perf_counter", lambda: 1000.0)
    unlimited = StopAtTimeBudget(0)
    unlimited.on_train_begin(None, None, None)
    assert not _step(unlimited, 5)
    tight = StopAtTimeBudget(1.0)
    tight.started = 0.0
    assert not _step(tight, 10, max_steps=10) and tight.stopped_at_step is None


def _rates(callback: StopAtTimeBudget, planned: int, steps: int) -> list[float]:
    """The learning rate of each step (peak 1.0) as the Trainer drives it: optimiser step, scheduler
    step, then the callbacks; the last entry is the rate after the last step."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = budget_decay(optimizer, planned, callback)
    callback.on_train_begin(None, None, None)
    rates = [optimizer.param_groups[0]["lr"]]
    for step in range(1, steps + 1):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
        if _step(callback, step, max_steps=planned):
            break
    return rates


def test_the_learning_rate_reaches_zero_at_the_step_the_budget_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 130.0, 160.0, 190.0])  # steps of 30 s: 3 of the 10 planned fit in 100 s
    monkeypatch.setattr("retrain.budget.time.perf_counter", lambda: next(clock))
    callback = StopAtTimeBudget(100.0)
    rates = _rates(callback, planned=10, steps=10)
    # planned over 10 steps until the first one is timed, then over the 3 that fit
    assert rates == pytest.approx([1.0, 0.9, 1 / 3, 0.0])
    assert callback.stopped_at_step == 3 and callback.horizon(10) == 3


def test_without_a_budget_the_decay_spans_the_planned_steps() -> None:
    rates = _rates(StopAtTimeBudget(0), planned=4, steps=4)
    assert rates == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


@pytest.mark.slow
def test_training_stops_at_its_budget_and_says_so(base_model_dir: Path, tmp_path: Path) -> None:
    from retrain.train import TrainConfig, make_trainer, run_trainer

    examples = [
        Example(f"s{i}", "sample", [{"role": "user", "content": f"Leave days? ({i})"}], "27 days.")
        for i in range(8)
    ]
    cfg = TrainConfig(epochs=50, batch_size=2, time_budget_s=0.5)  # 200 planned steps, half a second
    trainer = make_trainer(base_model_dir, examples, [], tmp_path / "kb-v1", cfg, progress=False)
    result = run_trainer(trainer, tmp_path / "kb-v1", cfg)
    assert result.stopped_by_budget and 1 <= result.steps < result.planned_steps == 200
    assert (tmp_path / "kb-v1" / "adapter_model.safetensors").is_file()
