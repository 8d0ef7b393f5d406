"""The validation gate: a candidate adapter must do at least as well as the live one.

`measure_pair` asks the model server (the candidate loaded under its own name, the live adapter or
the base model under theirs) the questions of three sets, each as the conversation the bot served:
  - the validation split: token-F1 and key-fact rate of the generated answers;
  - the corrected questions: each must be answered right (its key fact, else every number of the
    correction, else token-F1 >= 0.5 against it);
  - a regression set of answers users liked: token-F1 against the liked answer.
The validation loss comes from training (`retrain.train`), for both models on the same examples.

`decide` is pure, so the rules are tested on constructed figures:
  - no question may fail to get an answer;
  - validation loss within `loss_margin` (relative, default 20%) of the live one: a guard against a
    broken adapter (diverged, NaN), not a judge of a good one: an adapter that learned its
    corrections raises it a little while its answers get better (docs/decisions.md, "The gate's loss
    margin"). What users read is judged by the generated measures below;
  - validation token-F1, key-fact rate and liked-answer F1 within `margin` (absolute) of the live;
  - the corrected questions answered right at `corrected_min_rate` (default: all of them).
A check whose figure is missing on either side (no key facts, nothing liked yet) is skipped and
says so; a candidate with no check at all is rejected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from model_server.client import ModelClient
from model_server.errors import ModelServerUnavailable
from retrain.dataset import Dataset, Example
from retrain.metrics import has_key_fact, mean, normalise, token_f1

log = logging.getLogger(__name__)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*%?")


@dataclass(frozen=True)
class GateConfig:
    margin: float = field(default=0.02, metadata={"help": "GATE_MARGIN: how far below live is tolerated."})
    loss_margin: float = field(
        default=0.20, metadata={"help": "GATE_LOSS_MARGIN: how far (relative) validation loss may rise."}
    )
    corrected_min_rate: float = field(
        default=1.0, metadata={"help": "Share of corrected questions the candidate must answer right."}
    )
    max_tokens: int = field(default=128, metadata={"help": "Answer length when generating."})
    max_liked: int = field(default=50, metadata={"help": "Liked answers in the regression set."})
    max_validation: int = field(default=60, metadata={"help": "Validation questions asked."})
    concurrency: int = field(
        default=8, metadata={"help": "Questions in flight, both models' together (the server batches)."}
    )


@dataclass(frozen=True)
class GateSet:
    validation: list[Example]
    corrections: list[Example]
    liked: list[Example]

    @classmethod
    def from_dataset(cls, dataset: Dataset, cfg: GateConfig) -> GateSet:
        return cls(
            validation=dataset.split("validation")[: cfg.max_validation],
            corrections=[e for e in dataset.examples if e.kind == "correction"],
            liked=[e for e in dataset.examples if e.kind == "liked"][: cfg.max_liked],
        )

    def for_live(self) -> GateSet:
        """What the live model is asked: `decide` compares the corrected questions for the candidate
        alone (the live model answered them wrongly, that is why they were corrected), so asking it
        them again would only cost time – on a CPU host, a fifth of the gate's."""
        return GateSet(validation=self.validation, corrections=[], liked=self.liked)

    def examples(self) -> list[Example]:
        unique = {e.id: e for e in (*self.validation, *self.corrections, *self.liked)}
        return list(unique.values())


@dataclass(frozen=True)
class Figures:
    """What one model scored; None where there was nothing to measure."""

    val_loss: float | None = None
    val_token_f1: float | None = None
    val_key_fact_rate: float | None = None
    corrected_right_rate: float | None = None
    liked_token_f1: float | None = None
    questions: int = 0
    failures: int = 0
    wrong_corrections: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]  # the checks that failed (rejected) or every check made (passed)
    checks: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "rejected"
        return f"{verdict}: {'; '.join(self.reasons)}"


def decide(
    candidate: Figures,
    live: Figures,
    margin: float,
    *,
    loss_margin: float = 0.20,
    corrected_min_rate: float = 1.0,
) -> Decision:
    checks: list[str] = []
    failed: list[str] = []

    def check(ok: bool, text: str) -> None:
        checks.append(("ok: " if ok else "FAILED: ") + text)
        if not ok:
            failed.append(text)

    if candidate.failures:
        check(False, f"{candidate.failures} of {candidate.questions} questions got no answer")
    if candidate.val_loss is not None and live.val_loss is not None:
        limit = live.val_loss * (1 + loss_margin)
        check(
            candidate.val_loss <= limit,  # False for NaN
            f"validation loss {candidate.val_loss:.4f} vs live {live.val_loss:.4f} "
            f"(margin {loss_margin:.0%})",
        )
    for name, label in (
        ("val_token_f1", "validation token-F1"),
        ("val_key_fact_rate", "validation key-fact rate"),
        ("liked_token_f1", "liked answers token-F1"),
    ):
        ours, theirs = getattr(candidate, name), getattr(live, name)
        if ours is None or theirs is None:
            checks.append(f"skipped: {label} (nothing to measure)")
            continue
        check(ours >= theirs - margin, f"{label} {ours:.3f} vs live {theirs:.3f} (margin {margin})")
    if candidate.corrected_right_rate is not None:
        wrong = f"; wrong: {', '.join(candidate.wrong_corrections)}" if candidate.wrong_corrections else ""
        check(
            candidate.corrected_right_rate >= corrected_min_rate,
            f"corrected questions answered right {candidate.corrected_right_rate:.0%} "
            f"(needs {corrected_min_rate:.0%}){wrong}",
        )
    if not any(c.startswith(("ok", "FAILED")) for c in checks):
        check(False, "there was nothing to validate the candidate on")
    return Decision(passed=not failed, reasons=failed or checks, checks=checks)


def answered_right(answer: str, reference: str, key_fact: str | None) -> bool:
    """A corrected question is answered right when the answer carries the correction's point."""
    if key_fact:
        return has_key_fact(answer, key_fact)
    numbers = _NUMBER.findall(reference)
    if numbers:
        return all(has_key_fact(answer, n) for n in numbers)
    return token_f1(answer, reference) >= 0.5


def question_key(text: str) -> str:
    return " ".join(normalise(text))


def measure_pair(
    client: ModelClient,
    candidate: str,
    live: str,
    gate_set: GateSet,
    *,
    cfg: GateConfig,
    key_facts: Mapping[str, str] | None = None,
    candidate_loss: float | None = None,
    live_loss: float | None = None,
    progress: bool = True,
) -> tuple[Figures, Figures]:
    """The candidate's figures and the live model's, their questions asked from one pool: the server
    batches both models' questions together and stays busy to the last one. The live model is asked
    the validation and liked-answer questions only (`GateSet.for_live`)."""
    theirs = gate_set.for_live()
    questions = [(candidate, e) for e in gate_set.examples()] + [(live, e) for e in theirs.examples()]
    answers = _generate(client, questions, cfg=cfg, progress=progress)

    def of(model: str) -> dict[str, str | None]:
        return {e_id: text for (name, e_id), text in answers.items() if name == model}

    return (
        score(of(candidate), gate_set, key_facts, candidate_loss),
        score(of(live), theirs, key_facts, live_loss),
    )


def score(
    answers: Mapping[str, str | None],
    gate_set: GateSet,
    key_facts: Mapping[str, str] | None = None,
    val_loss: float | None = None,
) -> Figures:
    """Figures from one model's answers by example id (None: the question failed)."""
    facts = key_facts or {}
    failures = sum(1 for text in answers.values() if text is None)

    def text(example: Example) -> str:
        return answers.get(example.id) or ""

    def fact(example: Example) -> str | None:
        return facts.get(question_key(example.prompt[-1]["content"]))

    with_facts = [e for e in gate_set.validation if fact(e)]
    right = {e.id: answered_right(text(e), e.completion, fact(e)) for e in gate_set.corrections}
    return Figures(
        val_loss=val_loss,
        val_token_f1=_mean_or_none([token_f1(text(e), e.completion) for e in gate_set.validation]),
        val_key_fact_rate=_mean_or_none([float(has_key_fact(text(e), fact(e) or "")) for e in with_facts]),
        corrected_right_rate=_mean_or_none([float(ok) for ok in right.values()]),
        liked_token_f1=_mean_or_none([token_f1(text(e), e.completion) for e in gate_set.liked]),
        questions=len(answers),
        failures=failures,
        wrong_corrections=sorted(k for k, ok in right.items() if not ok),
    )


def _generate(
    client: ModelClient, questions: Sequence[tuple[str, Example]], *, cfg: GateConfig, progress: bool
) -> dict[tuple[str, str], str | None]:
    """Answers by (model, example id); None for a question the server failed on (counted, never
    skipped). A server that is gone altogether ends the measurement: there is nothing to compare."""

    def one(question: tuple[str, Example]) -> tuple[tuple[str, str], str | None]:
        model, example = question
        try:
            result = client.chat(example.prompt, model=model, max_tokens=cfg.max_tokens, logprobs=False)
            return (model, example.id), result.text
        except ModelServerUnavailable:
            raise
        except Exception:  # one failed question must not lose the others' scores
            log.warning("the gate's question %s failed on %s", example.id, model, exc_info=True)
            return (model, example.id), None

    models = ", ".join(dict.fromkeys(model for model, _ in questions))
    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        results = pool.map(one, questions)
        bar = tqdm(results, total=len(questions), desc=f"gate: asking {models}", disable=not progress)
        return dict(bar)


def _mean_or_none(values: Sequence[float]) -> float | None:
    return mean(values) if values else None
