"""Answer quality measures shared by `chatbot eval` and the validation gate."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCT = re.compile(f"[{re.escape(string.punctuation.replace('%', '').replace('#', ''))}]")


def normalise(text: str) -> list[str]:
    """Lower case, punctuation off (but keep %, # and decimal points), articles dropped."""
    text = re.sub(r"(?<=\d)[.,](?=\d)", "", text.lower())  # 1,500 and 1.500 -> 1500
    return [w for w in _PUNCT.sub(" ", text).split() if w not in {"a", "an", "the"}]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise(prediction), normalise(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def has_key_fact(prediction: str, key_fact: str) -> bool:
    """The key fact appears in the answer, ignoring case, punctuation and spacing."""
    fact = " ".join(normalise(key_fact))
    return bool(fact) and f" {fact} " in f" {' '.join(normalise(prediction))} "


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
