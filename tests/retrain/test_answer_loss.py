"""The CPU training loss on answer positions alone equals TRL's loss over every position, with the
same gradients; evaluation keeps TRL's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from retrain.answer_loss import AnswerPositionsTrainer
from retrain.dataset import Example
from retrain.train import TrainConfig, make_trainer

pytestmark = pytest.mark.slow

DOCS = "Answer only from the documents.\n\nDocuments:\n[1] Leave\nFull-time staff get 27 days a year."


def _examples(n: int) -> list[Example]:
    return [
        Example(
            id=f"train-{i}",
            kind="sample",
            prompt=[{"role": "system", "content": DOCS}, {"role": "user", "content": f"Leave days? ({i})"}],
            completion=f"You get 27 days of annual leave a year{'.' * (i + 1)}",
            split="train",
        )
        for i in range(n)
    ]


def _loss_and_grads(trainer: AnswerPositionsTrainer, batch: dict[str, Any], count: Any) -> tuple[float, dict]:
    model: Any = trainer.model
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=count)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def test_answer_positions_give_trl_loss_and_gradients(base_model_dir: Path, tmp_path: Path) -> None:
    # no LoRA dropout: each forward pass would draw its own masks and the gradients would differ
    cfg = TrainConfig(max_steps=1, batch_size=2, rows_per_pass=2, dropout=0.0)
    trainer = make_trainer(base_model_dir, _examples(2), [], tmp_path / "kb-v1", cfg, progress=False)
    assert isinstance(trainer, AnswerPositionsTrainer)
    assert trainer.answer_positions_only == (not torch.cuda.is_available())
    batch = next(iter(trainer.get_train_dataloader()))  # two rows, padded, with an attention mask
    labels = batch["labels"]
    assert (labels == -100).any() and (labels != -100).any()  # the prompt is masked, the answer is not
    count = (labels[:, 1:] != -100).sum()

    trainer.answer_positions_only = True
    ours, our_grads = _loss_and_grads(trainer, batch, count)
    trainer.answer_positions_only = False
    theirs, their_grads = _loss_and_grads(trainer, batch, count)

    assert ours == pytest.approx(theirs, rel=1e-4)
    assert our_grads and our_grads.keys() == their_grads.keys()
    assert all("lora_" in name for name in our_grads)  # only the adapter learns
    # the same up to float32 summation order (TRL accumulates its tiles in another order)
    # (lora_A's gradients are zero at the start, since lora_B is)
    for name, grad in our_grads.items():
        theirs_grad = their_grads[name]
        assert (grad - theirs_grad).norm() <= 1e-3 * theirs_grad.norm() + 1e-9, name
    assert any(g.norm() > 0 for g in our_grads.values())
    # without a batch count, the loss is the mean over this pass's answer tokens
    trainer.answer_positions_only = True
    alone = trainer.compute_loss(trainer.model, dict(batch))
    assert float(alone) == pytest.approx(ours, rel=1e-4)
    assert trainer._metrics["train"]["mean_token_accuracy"]  # logged like TRL's


def test_evaluation_stays_trl_s(base_model_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=1, batch_size=2)
    trainer = make_trainer(
        base_model_dir, _examples(2), _examples(2), tmp_path / "kb-v1", cfg, progress=False
    )
    trainer.answer_positions_only = True
    ours = trainer.evaluate()["eval_loss"]
    trainer.answer_positions_only = False
    assert ours == pytest.approx(trainer.evaluate()["eval_loss"], rel=1e-6)
