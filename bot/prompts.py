"""The prompt: answer only from the passages, short, and say so plainly when they do not cover it.

The same function builds the prompt for serving and, through the `chatbot` wiring, for training data, so
the model is trained on exactly the conversations it is served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]
TokenCounter = Callable[[str], int]

SYSTEM = (
    "You are the internal help assistant of {company}. Answer the employee's question using only "
    "the documents below. Answer in one to three short sentences and include the exact figures, "
    "names and deadlines from the documents. If the documents do not answer the question, say "
    '"I couldn\'t find that in the company documents" and suggest asking {fallback}.'
)

NOT_COVERED = (
    "I couldn't find that in the company documents. You could ask {fallback}; "
    "if you know the answer, please suggest a correction so I can learn it."
)


class PassageLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Turn:
    """One earlier message in the thread."""

    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class PromptStyle:
    company: str = "the company"
    fallback: str = "your manager or the team that owns the topic"
    system: str = SYSTEM  # a template with {company} and {fallback}; benches try others


def approx_tokens(text: str) -> int:
    """A fast, slightly pessimistic token estimate, for tests and fallbacks."""
    return max(1, int(len(text) / 3.5))


def format_passages(passages: Sequence[PassageLike]) -> str:
    return "\n\n".join(f"[{i}] {p.title}\n{p.text.strip()}" for i, p in enumerate(passages, start=1))


def build_messages(
    question: str,
    passages: Sequence[PassageLike],
    *,
    history: Sequence[Turn] = (),
    style: PromptStyle = PromptStyle(),
    budget: int = 1500,
    count: TokenCounter = approx_tokens,
) -> tuple[list[Message], list[PassageLike]]:
    """Messages that fit `budget` prompt tokens, and the passages that made it in.

    Passages are taken in rank order, skipping any that no longer fit; then the most recent
    history turns that still fit. The question itself is never cut.
    """
    system = style.system.format(company=style.company, fallback=style.fallback)
    remaining = budget - count(system) - count(question) - 16  # chat-template overhead
    used: list[PassageLike] = []
    for passage in passages:
        cost = count(passage.title) + count(passage.text) + 4
        if cost > remaining:
            continue
        used.append(passage)
        remaining -= cost
    kept: list[Turn] = []
    for turn in reversed(history):
        cost = count(turn.text) + 4
        if cost > remaining:
            break
        kept.append(turn)
        remaining -= cost
    kept.reverse()

    documents = format_passages(used) if used else "(no documents matched)"
    messages: list[Message] = [{"role": "system", "content": f"{system}\n\nDocuments:\n{documents}"}]
    messages += [{"role": turn.role, "content": turn.text} for turn in kept]
    messages.append({"role": "user", "content": question})
    return messages, used
