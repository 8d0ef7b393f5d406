"""Calibrates REVIEWED_ANSWER_SIMILARITY: how close a question must be to an approved correction's
question for the bot to answer with the reviewed answer itself.

    .venv/bin/python -m bench.reviewed_match                   # MiniLM, the production embedder
    .venv/bin/python -m bench.reviewed_match --embedder hashing

Every sample question (bot/knowledge/sample/questions.jsonl, all splits) stands for a correction's
question. Each question is asked in both its wordings against every other question's correction:

* a *true match* is the reworded question reaching its own question's correction;
* a *false match* is either wording of a question reaching a DIFFERENT question's correction
  (all ordered pairs, 2 x n x (n - 1) of them).

The threshold is the lowest value, rounded up to 0.01, at which no pair is a false match: as many
reworded questions as possible find their correction, and none finds a wrong one. As a check on
over-fitting, the same rule is also applied to the train and validation questions alone and
measured on the test questions; `trade_off` shows what lower thresholds would match, and at what
cost in wrong matches. Writes bench/results/reviewed_match.json.

With all-MiniLM-L6-v2 the sample's rewordings are hard (median similarity to their original about
0.5) while some different questions are close ("when is Larkspur 101?" and "When is Larkspur Day
this year?", 0.81): the zero-false-match threshold, 0.82, serves the reviewed answer for a repeat
or a light rewording of a corrected question, and leaves real paraphrases to the model, with the
correction first in its context.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from bot.knowledge.embedder import load_embedder
from bot.knowledge.evaluate import load_questions

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "reviewed_match.json"


def threshold_for(original: np.ndarray, reworded: np.ndarray) -> float:
    """The lowest similarity (rounded up to 0.01, strictly above every wrong pair) at which no
    question in either wording matches a different question's original wording."""
    worst = max(_off_diagonal_max(original @ original.T), _off_diagonal_max(reworded @ original.T))
    return math.floor(worst * 100 + 1) / 100


def measure(original: np.ndarray, reworded: np.ndarray, threshold: float) -> dict[str, Any]:
    """Match rates at `threshold` for unit vectors of the questions' two wordings (row i of each
    is one question)."""
    n = len(original)
    own = np.einsum("ij,ij->i", reworded, original)
    wrong = [original @ original.T, reworded @ original.T]
    off = ~np.eye(n, dtype=bool)
    false_pairs = sum(int((m[off] >= threshold).sum()) for m in wrong)
    return {
        "questions": n,
        "reworded_matched": round(float((own >= threshold).mean()), 4),
        "original_matched": 1.0,  # a question is its correction's question: similarity 1
        "false_matches": false_pairs,
        "false_match_rate": round(false_pairs / (2 * n * (n - 1)), 6) if n > 1 else 0.0,
        "questions_with_a_false_match": int(
            sum(((m >= threshold) & off).any(axis=1) for m in wrong).astype(bool).sum()
        ),
        "reworded_similarity": {
            "min": round(float(own.min()), 4),
            "median": round(float(np.median(own)), 4),
        },
        "wrong_pair_similarity_max": round(max(_off_diagonal_max(m) for m in wrong), 4),
    }


def _off_diagonal_max(matrix: np.ndarray) -> float:
    masked = matrix.copy()
    np.fill_diagonal(masked, -np.inf)
    return float(masked.max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="", help="EMBEDDING_MODEL to calibrate ('' = bundled MiniLM)")
    args = parser.parse_args()
    embedder = load_embedder(args.embedder or None)
    questions = load_questions()
    original = embedder.embed([q["question"] for q in questions]).astype(np.float64)
    reworded = embedder.embed([q["reworded"] for q in questions]).astype(np.float64)
    threshold = threshold_for(original, reworded)

    fit = [i for i, q in enumerate(questions) if q["split"] in ("train", "validation")]
    test = [i for i, q in enumerate(questions) if q["split"] == "test"]
    fit_threshold = threshold_for(original[fit], reworded[fit])
    worst = [
        {"question": questions[i]["question"], "matched": questions[j]["question"], "similarity": round(s, 4)}
        for s, i, j in _closest_wrong_pairs(original, reworded, 5)
    ]
    report = {
        "benchmark": "reviewed_match",
        "machine": describe(),
        "embedder": embedder.model_id,
        "rule": "lowest threshold (0.01 steps) with no false match over all pairs of sample questions",
        "threshold": threshold,
        "all_questions": measure(original, reworded, threshold),
        "held_out_check": {
            "threshold_from_train_and_validation": fit_threshold,
            "test_split": measure(original[test], reworded[test], fit_threshold),
            "test_against_all_corrections": {
                "false_matches": int(
                    sum(
                        ((m[test] >= fit_threshold) & ~np.eye(len(questions), dtype=bool)[test]).sum()
                        for m in (original @ original.T, reworded @ original.T)
                    )
                )
            },
        },
        "trade_off": [
            {
                "threshold": t,
                **{
                    k: v
                    for k, v in measure(original, reworded, t).items()
                    if "false" in k or k == "reworded_matched"
                },
            }
            for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
        ],
        "closest_wrong_pairs": worst,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2, ensure_ascii=False))
    print(f"saved {RESULTS}")


def _closest_wrong_pairs(
    original: np.ndarray, reworded: np.ndarray, count: int
) -> list[tuple[float, int, int]]:
    pairs: list[tuple[float, int, int]] = []
    for matrix in (original @ original.T, reworded @ original.T):
        np.fill_diagonal(matrix, -np.inf)
        for flat in np.argsort(matrix, axis=None)[-count:]:
            i, j = divmod(int(flat), matrix.shape[1])
            pairs.append((float(matrix[i, j]), i, j))
    return sorted(pairs, reverse=True)[:count]


if __name__ == "__main__":
    main()
