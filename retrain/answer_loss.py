"""TRL's SFTTrainer, with the training loss computed on the answer positions alone on a CPU.

TRL's fused LM head scores only the positions that carry a label where Triton runs (a GPU); elsewhere
it scores every position of the conversation and masks afterwards, so that tile shapes stay fixed
for compilers. On a CPU that is pure cost: a served conversation is ~700 tokens of retrieved
passages and question for ~50 tokens of answer, and the head projects each position onto a
49,152-token vocabulary, forward and backward. Here, on a CPU, a training step runs the backbone,
picks the hidden states whose next token is part of the answer, and projects only those: the same
loss (summed over answer tokens, divided by the batch's answer tokens as TRL does), a fraction of
the work (docs/decisions.md).

Evaluation (the validation loss of the candidate and of the live model) stays TRL's own, so that
both are measured one way.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from trl import SFTTrainer


class AnswerPositionsTrainer(SFTTrainer):
    def __init__(self, *args: Any, answer_positions_only: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # default: only where TRL itself would score every position (no GPU)
        self.answer_positions_only = (
            not torch.cuda.is_available() if answer_positions_only is None else answer_positions_only
        )

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if not (self.answer_positions_only and model.training) or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs["labels"][:, 1:]
        answer = labels != -100
        hidden = self._backbone(model)(
            input_ids=inputs["input_ids"],
            attention_mask=inputs.get("attention_mask"),
            use_cache=False,
        ).last_hidden_state[:, :-1]
        head = self._causal_lm(model).get_output_embeddings()
        logits = head(hidden[answer]).float()
        targets = labels[answer]
        total = F.cross_entropy(logits, targets, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else answer.sum().clamp(min=1)
        loss = total / torch.as_tensor(count, device=total.device)
        with torch.no_grad():
            right = (logits.argmax(dim=-1) == targets).sum().item()
        self._metrics["train"]["mean_token_accuracy"].append(right / max(int(answer.sum()), 1))
        return loss

    @staticmethod
    def _causal_lm(model: Any) -> Any:
        """The causal LM under the PEFT (and accelerate) wrappers, with the LoRA layers injected."""
        inner = getattr(model, "module", model)
        return inner.get_base_model() if hasattr(inner, "get_base_model") else inner

    @classmethod
    def _backbone(cls, model: Any) -> Any:
        causal = cls._causal_lm(model)
        return getattr(causal, causal.base_model_prefix)
