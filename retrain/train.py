"""Train a LoRA adapter on the curated dataset with TRL's SFTTrainer, loss on the answer only.

    python -m retrain.train --base data/models/smollm2-135m-instruct --data dataset.jsonl --out adapters/kb-v3

Only what vLLM can serve is trained: plain LoRA on the attention projections, no
`modules_to_save`, no DoRA, rank within the server's limit. Runs on the CPU (defaults that finish
on 2 cores) or on a GPU where there is one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from datasets import Dataset
from peft import LoraConfig
from torch.optim import Optimizer
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

from retrain.answer_loss import AnswerPositionsTrainer
from retrain.budget import StopAtTimeBudget, budget_decay
from retrain.dataset import Example
from retrain.errors import TrainingFailed
from retrain.heap import TrimHeapEachStep

log = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingFailed",
    "lora_config",
    "make_trainer",
    "reference_loss",
    "run_trainer",
    "train_adapter",
]


@dataclass
class TrainConfig:
    # 16: learned more corrections than 8 or 32 (docs/decisions.md, "LoRA rank 16")
    rank: int = field(default=16, metadata={"help": "LoRA rank; must not exceed the server's MAX_LORA_RANK."})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (alpha / rank)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    # Attention and MLP: facts a correction teaches live in the MLP as much as anywhere; vLLM serves
    # LoRA on every one of these (gate_proj and up_proj as its packed gate_up_proj).
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        metadata={"help": "Layers that get adapters."},
    )
    learning_rate: float = field(
        default=1e-3, metadata={"help": "Peak learning rate, decayed linearly to zero at the last step."}
    )
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training split."})
    # Small batches: more optimiser steps from the few examples a retrain has, and less padding.
    batch_size: int = field(default=4, metadata={"help": "Examples per optimiser step."})
    max_length: int = field(default=1024, metadata={"help": "Tokens per example; longer ones are cut."})
    rows_per_pass: int = field(
        default=0, metadata={"help": "Examples per forward pass (0: 1 on a CPU, the whole batch on a GPU)."}
    )
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many steps (-1: all epochs)."})
    time_budget_s: float = field(
        default=0.0, metadata={"help": "Stop after the last step that fits in this many seconds (0: none)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for initialisation and shuffling."})
    dtype: str = field(
        default="float32",
        metadata={"help": "The base weights' dtype in training (float32 or bfloat16); LoRA stays float32."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass: slower, less memory."}
    )


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int
    train_loss: float
    eval_loss: float | None
    trained_tokens: int
    seconds: float
    log_history: list[dict[str, Any]]
    planned_steps: int = 0
    stopped_by_budget: bool = False

    @property
    def tokens_per_s(self) -> float:
        return self.trained_tokens / self.seconds if self.seconds else 0.0


def to_rows(examples: Sequence[Example]) -> list[dict[str, Any]]:
    """TRL's conversational prompt-completion shape: the loss covers the completion only."""
    return [
        {"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]}
        for e in examples
        if e.label
    ]


def make_trainer(
    base_model_dir: Path,
    train: Sequence[Example],
    validation: Sequence[Example],
    out_dir: Path,
    cfg: TrainConfig,
    *,
    max_lora_rank: int = 16,
    progress: bool = True,
) -> RetrainTrainer:
    if cfg.rank > max_lora_rank:
        raise TrainingFailed(f"LoRA rank {cfg.rank} is above the model server's limit of {max_lora_rank}.")
    rows = to_rows(train)
    if not rows:
        raise TrainingFailed("There are no training examples yet.")
    if out_dir.exists():
        raise TrainingFailed(f"{out_dir} exists; adapter versions are never overwritten.")

    # Model and tokenizer: the same base the server serves.
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=getattr(torch, cfg.dtype))

    lora = lora_config(cfg)
    per_pass = rows_per_pass(cfg)
    args = SFTConfig(
        output_dir=str(out_dir.with_name(out_dir.name + ".work")),
        per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=cfg.batch_size // per_pass,
        per_device_eval_batch_size=per_pass,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        warmup_steps=0,  # the decay is RetrainTrainer's
        max_length=cfg.max_length,
        completion_only_loss=True,
        logging_steps=1,
        # The Trainer hides NaN/inf losses from its logs by default; StopOnNaN needs to see them.
        logging_nan_inf_filter=False,
        # TRL turns this on by default; per model, as it costs time and saves memory (docs/decisions.md).
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
        # TRL turns bf16 on by default; on a CPU autocast can run every matmul through a slow generic kernel.
        bf16=use_bf16(),
        disable_tqdm=not progress,
    )
    eval_rows = to_rows(validation)
    return RetrainTrainer(
        budget=StopAtTimeBudget(cfg.time_budget_s),
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[StopOnNaN(), TrimHeapEachStep()],
    )


class RetrainTrainer(AnswerPositionsTrainer):
    """The loss on the answer positions, stopped at the time budget, with the learning rate decayed
    over the steps that budget allows (`retrain.budget.budget_decay`)."""

    def __init__(self, *args: Any, budget: StopAtTimeBudget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.add_callback(budget)

    def create_scheduler(self, num_training_steps: int, optimizer: Optimizer | None = None) -> Any:
        if self.lr_scheduler is None:
            chosen = optimizer if optimizer is not None else self.optimizer
            assert chosen is not None, "the Trainer creates its optimizer before the scheduler"
            self.lr_scheduler = budget_decay(chosen, num_training_steps, self.budget)
            self._created_lr_scheduler = True
        return self.lr_scheduler


def rows_per_pass(cfg: TrainConfig) -> int:
    """Conversations per forward pass; the rest of a batch is gradient accumulation.

    On a CPU, one: with padding and a mask torch's CPU attention materialises every attention matrix
    (docs/decisions.md, "one conversation per forward pass"). A GPU's kernels take the mask in stride."""
    automatic = cfg.batch_size if torch.cuda.is_available() else 1
    rows = cfg.rows_per_pass if cfg.rows_per_pass > 0 else automatic
    if cfg.batch_size % rows:
        raise TrainingFailed(f"batch size {cfg.batch_size} is not a multiple of {rows} rows per pass.")
    return rows


def use_bf16() -> bool:
    """bf16 mixed precision only on a GPU that has it; float32 everywhere else."""
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def lora_config(cfg: TrainConfig) -> LoraConfig:
    """Only what vLLM serves: plain LoRA, nothing saved besides the adapter weights."""
    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        use_dora=False,
    )


def train_adapter(
    base_model_dir: Path,
    train: Sequence[Example],
    validation: Sequence[Example],
    out_dir: Path,
    cfg: TrainConfig,
    *,
    max_lora_rank: int = 16,
    progress: bool = True,
) -> TrainResult:
    trainer = make_trainer(
        base_model_dir, train, validation, out_dir, cfg, max_lora_rank=max_lora_rank, progress=progress
    )
    return run_trainer(trainer, out_dir, cfg)


def run_trainer(trainer: RetrainTrainer, out_dir: Path, cfg: TrainConfig) -> TrainResult:
    tokenized = cast(Dataset, trainer.train_dataset)  # SFTTrainer tokenized it in __init__
    tokens_per_epoch = sum(len(ids) for ids in tokenized["input_ids"])
    steps_per_epoch = math.ceil(len(tokenized) / cfg.batch_size)

    # Train, then measure the validation loss once.
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    eval_loss = trainer.evaluate()["eval_loss"] if trainer.eval_dataset is not None else None
    if not math.isfinite(output.training_loss):
        raise TrainingFailed(f"Training diverged (loss {output.training_loss}).")

    # Save into a fresh folder; the caller writes the manifest next to it.
    out_dir.mkdir(parents=True)
    cast(Any, trainer.model).save_pretrained(out_dir)
    return TrainResult(
        adapter_dir=out_dir,
        steps=trainer.state.global_step,
        train_loss=float(output.training_loss),
        eval_loss=float(eval_loss) if eval_loss is not None else None,
        trained_tokens=int(tokens_per_epoch * trainer.state.global_step / steps_per_epoch),
        seconds=seconds,
        log_history=list(trainer.state.log_history),
        planned_steps=int(trainer.state.max_steps),
        stopped_by_budget=trainer.budget.stopped_at_step is not None,
    )


def reference_loss(trainer: SFTTrainer, live_adapter: Path | None) -> float | None:
    """The validation loss of what serves now, on the examples the candidate was measured on:
    the base model (the LoRA switched off) or the live adapter loaded beside the new one."""
    if trainer.eval_dataset is None:
        return None
    model = cast(Any, trainer.model)
    if live_adapter is None:
        with model.disable_adapter():
            return float(trainer.evaluate(metric_key_prefix="live")["live_loss"])
    model.load_adapter(str(live_adapter), adapter_name="live")
    try:
        model.set_adapter("live")
        return float(trainer.evaluate(metric_key_prefix="live")["live_loss"])
    finally:
        model.set_adapter("default")
        model.delete_adapter("live")


class StopOnNaN(TrainerCallback):
    """End training at the first non-finite loss instead of saving a broken adapter."""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
    ) -> None:
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingFailed(
                    f"The {key} became {value} at step {state.global_step}; training stopped."
                )


def read_examples(path: Path) -> list[Example]:
    return [Example(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="base model directory")
    parser.add_argument("--data", type=Path, required=True, help="dataset JSONL (retrain.dataset)")
    parser.add_argument("--out", type=Path, required=True, help="new adapter directory")
    for name, spec in TrainConfig.__dataclass_fields__.items():
        if name != "target_modules":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(spec.default), default=spec.default)
    args = parser.parse_args()
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})
    examples = read_examples(args.data)
    result = train_adapter(
        args.base,
        [e for e in examples if e.split == "train"],
        [e for e in examples if e.split == "validation"],
        args.out,
        cfg,
    )
    print(
        json.dumps(
            {**asdict(result), "adapter_dir": str(result.adapter_dir), "log_history": len(result.log_history)}
        )
    )


if __name__ == "__main__":
    main()
