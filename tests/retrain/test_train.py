"""LoRA training on the real SmolLM2, a few steps: the adapter learns, the base stays as it was,
and what is saved is something vLLM will serve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from retrain.dataset import Example
from retrain.heap import TrimHeapEachStep
from retrain.train import TrainConfig, TrainingFailed, make_trainer, run_trainer

SYSTEM = {"role": "system", "content": "Answer only from the documents.\n\nDocuments:\n[1] Leave\n27 days."}


def _examples(n: int, split: str = "train") -> list[Example]:
    return [
        Example(
            id=f"{split}-{i}",
            kind="sample",
            prompt=[SYSTEM, {"role": "user", "content": f"How many leave days do I get? ({i})"}],
            completion="You get 27 days of annual leave a year.",
            split=split,
        )
        for i in range(n)
    ]


pytestmark = pytest.mark.slow


def test_a_few_steps_change_lora_weights_and_not_the_base(base_model_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=3, batch_size=2, learning_rate=1e-3)
    trainer = make_trainer(base_model_dir, _examples(6), _examples(2, "validation"), tmp_path / "kb-v1", cfg)
    if not torch.cuda.is_available():
        # TRL's default bf16 autocast runs a CPU without bf16 instructions ~13x slower
        assert not trainer.args.bf16 and trainer.args.use_cpu
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}  # type: ignore[union-attr]
    result = run_trainer(trainer, tmp_path / "kb-v1", cfg)

    after = dict(trainer.model.named_parameters())  # type: ignore[union-attr]
    lora = [n for n in before if "lora_" in n]
    base = [n for n in before if "lora_" not in n]
    assert lora and base
    assert any(not torch.equal(before[n], after[n]) for n in lora if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in base), "base weights must not move"
    assert all(not after[n].requires_grad for n in base)

    assert result.steps == 3 and math.isfinite(result.train_loss) and result.eval_loss is not None
    assert result.trained_tokens > 0 and result.tokens_per_s > 0
    assert [row["loss"] for row in result.log_history if "loss" in row]  # a loss curve to plot

    saved = load_file(tmp_path / "kb-v1" / "adapter_model.safetensors")
    assert saved and all("lora_" in name for name in saved)
    config = json.loads((tmp_path / "kb-v1" / "adapter_config.json").read_text())
    assert config["r"] == cfg.rank and not config.get("modules_to_save") and not config.get("use_dora")


def test_refusals_before_any_work(base_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingFailed, match="above the model server's limit of 16"):
        make_trainer(base_model_dir, _examples(2), [], tmp_path / "a", TrainConfig(rank=32))
    with pytest.raises(TrainingFailed, match="no training examples"):
        make_trainer(base_model_dir, [], [], tmp_path / "b", TrainConfig())
    (tmp_path / "kb-v2").mkdir()
    with pytest.raises(TrainingFailed, match="never overwritten"):
        make_trainer(base_model_dir, _examples(2), [], tmp_path / "kb-v2", TrainConfig())


def test_a_nan_loss_stops_training_without_an_adapter(base_model_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=3, batch_size=2)
    trainer = make_trainer(base_model_dir, _examples(4), [], tmp_path / "kb-nan", cfg)
    with torch.no_grad():  # poison one LoRA matrix: the very first loss is NaN
        next(p for n, p in trainer.model.named_parameters() if "lora_A" in n).fill_(float("nan"))  # type: ignore[union-attr]
    with pytest.raises(TrainingFailed, match="nan"):
        run_trainer(trainer, tmp_path / "kb-nan", cfg)
    assert not (tmp_path / "kb-nan").exists()


def test_on_a_cpu_a_batch_is_one_conversation_per_pass(base_model_dir: Path, tmp_path: Path) -> None:
    """Padded rows with an attention mask send torch's CPU attention down its slow, memory-hungry
    path (python -m bench.train_step); the batch is kept by gradient accumulation instead."""
    trainer = make_trainer(base_model_dir, _examples(4), [], tmp_path / "kb-v1", TrainConfig(batch_size=4))
    expected = (4, 1) if torch.cuda.is_available() else (1, 4)
    assert (trainer.args.per_device_train_batch_size, trainer.args.gradient_accumulation_steps) == expected
    both = make_trainer(
        base_model_dir, _examples(4), [], tmp_path / "kb-v2", TrainConfig(batch_size=4, rows_per_pass=2)
    )
    assert (both.args.per_device_train_batch_size, both.args.gradient_accumulation_steps) == (2, 2)
    with pytest.raises(TrainingFailed, match="not a multiple"):
        make_trainer(
            base_model_dir, _examples(4), [], tmp_path / "kb-v3", TrainConfig(batch_size=4, rows_per_pass=3)
        )


def test_gradient_checkpointing_trains_the_same_adapter(base_model_dir: Path, tmp_path: Path) -> None:
    """It trades time for memory (python -m bench.train_step); the steps themselves must not change."""
    weights = {}
    for checkpointing in (False, True):
        cfg = TrainConfig(max_steps=2, batch_size=2, learning_rate=1e-3, gradient_checkpointing=checkpointing)
        out = tmp_path / f"kb-{checkpointing}"
        trainer = make_trainer(base_model_dir, _examples(4), [], out, cfg, progress=False)
        assert trainer.args.gradient_checkpointing is checkpointing
        run_trainer(trainer, out, cfg)
        weights[checkpointing] = load_file(out / "adapter_model.safetensors")
    assert weights[True].keys() == weights[False].keys()
    for name, plain in weights[False].items():
        torch.testing.assert_close(weights[True][name], plain, rtol=1e-3, atol=1e-5)


def test_the_trainer_gives_freed_memory_back_after_each_step(base_model_dir: Path, tmp_path: Path) -> None:
    trainer = make_trainer(base_model_dir, _examples(1), [], tmp_path / "a", TrainConfig(max_steps=1))
    assert any(isinstance(c, TrimHeapEachStep) for c in trainer.callback_handler.callbacks)
