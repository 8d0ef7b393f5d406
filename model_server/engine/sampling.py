"""Choosing each row's next token from one forward pass's logits, and its log-probabilities.

Logprobs are vLLM's default "raw" ones: log_softmax of the model's logits before temperature or
top-p, taken from the same logits the token was drawn from. A row with a seed draws from its own
generator, so its text depends on the seed alone and not on which requests shared its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = field(default_factory=frozenset)
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Choice:
    token: int
    logprob: float | None  # None when the row did not ask for logprobs
    top: tuple[tuple[int, float], ...] = ()


def make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    generator = torch.Generator()
    generator.manual_seed(seed % 2**64)  # torch wants a non-negative 64-bit seed; OpenAI's may be negative
    return generator


def choose(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> list[Choice]:
    """One token per row of `logits` (rows × vocab, float32)."""
    tokens = logits.argmax(dim=-1)
    for row, p in enumerate(params):
        if not p.greedy:
            tokens[row] = _sample(logits[row], p, generators[row])
    wanted = [row for row, p in enumerate(params) if p.logprobs]
    logprobs = torch.log_softmax(logits[wanted], dim=-1) if wanted else None
    choices = []
    token_list = tokens.tolist()
    for row, p in enumerate(params):
        if logprobs is None or not p.logprobs:
            choices.append(Choice(token_list[row], None))
            continue
        row_logprobs = logprobs[wanted.index(row)]
        top: tuple[tuple[int, float], ...] = ()
        if p.top_logprobs:
            values, ids = row_logprobs.topk(p.top_logprobs)
            top = tuple(zip(ids.tolist(), values.tolist(), strict=True))
        choices.append(Choice(token_list[row], float(row_logprobs[token_list[row]]), top))
    return choices


def _sample(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator | None) -> int:
    probs = torch.softmax(logits / p.temperature, dim=-1)
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # drop a token once the more likely ones already cover top_p; the most likely always stays
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > p.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator).item())
