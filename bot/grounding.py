"""Does the model find the answer in its passages? One yes/no token asked before the answer.

A small model asked an on-topic question the wiki does not answer (pensions, when the passages are
about payroll) writes a fluent answer from the nearest passage instead of saying so. Asked first
whether the documents state the answer, it tells the two apart far better than it does while
answering. The check is the served prompt with the question extended, so the model server reuses the
long shared prefix (system prompt and passages) and the check costs one generated token.

The yes-share alone tells a distant gap (a dress code, when the wiki has none) from an answer, but
not a near miss, where the nearest passage is on the neighbouring topic (code reviews, asked about
performance reviews). Retrieval's cosine between the question and its closest passage falls for
exactly those, so the check's score is the sum of the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bot.prompts import Message

CHECK = (
    "Before answering: is the answer to this question written in the documents above? "
    "Reply with one word, yes or no."
)


def check_messages(messages: list[Message]) -> list[Message]:
    """The served messages with the last (the question) followed by CHECK."""
    *head, question = messages
    return [*head, {"role": question["role"], "content": f"{question['content']}\n\n{CHECK}"}]


def yes_share(alternatives: Mapping[str, float]) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first token's alternatives (token -> logprob); None when
    neither word is among them."""
    yes = no = 0.0
    for token, logprob in alternatives.items():
        word = token.strip().strip(".").lower()
        if word == "yes":
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
    return yes / (yes + no) if yes + no else None


def score(share: float | None, similarities: Sequence[float]) -> float | None:
    """The yes-share plus the closest passage's cosine similarity to the question (0 to 2); None
    when the model said neither word, or nothing was retrieved."""
    if share is None or not similarities:
        return None
    return share + max(similarities)
