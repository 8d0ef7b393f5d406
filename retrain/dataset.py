"""Turn the store into training examples.

Sources, each example being the conversation as it was served (system prompt with the passages
retrieved then, thread history, the question) plus the target answer:
  - approved corrections: the correction is the target, the original answer kept as "rejected";
  - each correction's grounded twin (where a `grounded_prompt_for` is given): the same question and
    target with the passages retrieved for the question and the corrected answer together. The
    served passages often lack what the correction says (the bot answered wrongly for a reason), and
    trained on them alone the model learns to answer that question from memory, not from the
    documents; the twin shows it the passage that holds the answer, which a reworded question
    retrieves too. Skipped where it would be the served conversation again;
  - answers with a positive vote balance and no open or approved correction (target: the answer);
  - answers with a negative balance: kept only as undesirable examples for KTO;
  - the sample question set: its train split for training, its validation split for validation.
Corrections always go to the train split; the others split on a stable hash of the example id.
People who opted out are excluded; personal data is scrubbed (contacts published in the served
documents are kept); exact duplicates and examples over
the length limit are dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from feedback import queries, triage
from feedback.models import Answer, Correction
from retrain.pii import Scrubber

Message = dict[str, str]
PromptBuilder = Callable[[str], list[Message]]
GroundedPromptBuilder = Callable[[str, str], list[Message]]  # (question, answer) -> messages
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Seed:
    """A question from the sample set, with its reference answer."""

    id: str
    question: str
    answer: str
    split: str  # train, validation or test (test never becomes training data)


@dataclass(frozen=True)
class Example:
    id: str
    kind: str  # correction, grounded (a correction's twin), liked, disliked, sample
    prompt: list[Message]  # everything before the answer, ending with the user's question
    completion: str
    rejected: str | None = None
    label: bool = True  # desirable (KTO)
    split: str = "train"
    # Where a correction's answer came from: a person's correction, or a sampled answer reviewers
    # confirmed as it was, took the teacher's draft for, or edited. Empty for other kinds.
    provenance: str = ""


@dataclass
class Dataset:
    examples: list[Example]
    dropped: Counter[str] = field(default_factory=Counter)
    scrubbed: Counter[str] = field(default_factory=Counter)
    feedback_range: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        digest = hashlib.sha256()
        for example in sorted(self.examples, key=lambda e: e.id):
            digest.update(json.dumps(asdict(example), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def split(self, name: str, *, sft: bool = True) -> list[Example]:
        """Examples of one split; `sft` keeps only desirable ones (what supervised training uses)."""
        return [e for e in self.examples if e.split == name and (e.label or not sft)]

    def counts(self) -> dict[str, int]:
        return dict(Counter(f"{e.kind}/{e.split}" for e in self.examples))

    def write_jsonl(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for example in self.examples:
                out.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")


def grounded_query(question: str, answer: str) -> str:
    """What a correction's grounded twin retrieves its passages with."""
    return f"{question}\n{answer}"


def stable_split(example_id: str, validation_share: float) -> str:
    bucket = int(hashlib.sha1(example_id.encode()).hexdigest()[:8], 16) % 1000
    return "validation" if bucket < validation_share * 1000 else "train"


def build_dataset(
    session: Session,
    *,
    seeds: Sequence[Seed],
    prompt_for: PromptBuilder,
    scrubber: Scrubber,
    count_tokens: TokenCounter,
    max_tokens: int = 1024,
    opted_out: Iterable[str] = (),
    validation_share: float = 0.1,
    grounded_prompt_for: GroundedPromptBuilder | None = None,
) -> Dataset:
    excluded = set(opted_out) | queries.opted_out_users(session)
    dataset = Dataset(examples=[])
    candidates: list[Example] = []
    answer_ids: list[int] = []

    for correction, answer, question in queries.approved_corrections(session):
        if question.user_id in excluded or correction.author in excluded:
            dataset.dropped["opted_out"] += 1
            continue
        if not answer.prompt:
            dataset.dropped["no_prompt"] += 1
            continue
        example_id = f"correction:{correction.id}"
        origin = provenance(correction, answer)
        # The passages lacked the answer: a documentation gap. Taught from them as served, the model
        # would learn to answer without its sources; only the grounded twin (the correction as a
        # passage) is kept, and correction recall serves it meanwhile.
        if correction.triage == triage.RETRIEVAL:
            dataset.dropped["retrieval_miss"] += 1
        else:
            candidates.append(
                Example(
                    id=example_id,
                    kind="correction",
                    prompt=answer.prompt,
                    completion=correction.text,
                    # a confirmed answer replaced nothing: a positive example, not a preference pair
                    rejected=None if origin == "reviewer_confirmed" else answer.text,
                    provenance=origin,
                    # Always trained on: the gate checks every correction separately, and a
                    # correction held out for validation would never be learnt.
                    split="train",
                )
            )
        answer_ids.append(answer.id or 0)
        if grounded_prompt_for is not None:
            grounded = grounded_prompt_for(answer.prompt[-1]["content"], correction.text)
            if grounded == answer.prompt:
                dataset.dropped["grounded_as_served"] += 1
            else:
                candidates.append(
                    Example(
                        id=f"grounded:{correction.id}",
                        kind="grounded",
                        prompt=grounded,
                        completion=correction.text,
                        split="train",
                    )
                )

    for answer, question, net in queries.voted_answers(session):
        if question.user_id in excluded:
            dataset.dropped["opted_out"] += 1
            continue
        if not answer.prompt:
            dataset.dropped["no_prompt"] += 1
            continue
        example_id = f"answer:{answer.id}"
        candidates.append(
            Example(
                id=example_id,
                kind="liked" if net > 0 else "disliked",
                prompt=answer.prompt,
                completion=answer.text,
                label=net > 0,
                split=stable_split(example_id, validation_share),
            )
        )
        answer_ids.append(answer.id or 0)

    for seed in seeds:
        if seed.split not in ("train", "validation"):
            continue
        prompt = prompt_for(seed.question)
        candidates.append(
            Example(
                id=f"sample:{seed.id}", kind="sample", prompt=prompt, completion=seed.answer, split=seed.split
            )
        )

    # The documents the bot served (in each system prompt) are the company's own words.
    scrubber.allow(m["content"] for e in candidates for m in e.prompt if m["role"] == "system")
    seen: set[tuple[str, str, bool]] = set()
    for example in candidates:
        example = _scrubbed(example, scrubber)
        # a grounded twin repeats its correction's question and answer, with other passages
        key = (_norm(example.prompt[-1]["content"]), _norm(example.completion), example.kind == "grounded")
        if key in seen:
            dataset.dropped["duplicate"] += 1
            continue
        size = sum(count_tokens(m["content"]) for m in example.prompt) + count_tokens(example.completion)
        if size > max_tokens:
            dataset.dropped["too_long"] += 1
            continue
        seen.add(key)
        dataset.examples.append(example)
    dataset.scrubbed = Counter(scrubber.counts)
    if answer_ids:
        dataset.feedback_range = {"first_answer_id": min(answer_ids), "last_answer_id": max(answer_ids)}
    return dataset


def provenance(correction: Correction, answer: Answer) -> str:
    """user_correction, reviewer_confirmed, teacher_draft or reviewer_edit."""
    if correction.origin != "sampled":
        return "user_correction"
    if _norm(correction.text) == _norm(answer.text):
        return "reviewer_confirmed"
    if correction.draft and _norm(correction.text) == _norm(correction.draft):
        return "teacher_draft"
    return "reviewer_edit"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _scrubbed(example: Example, scrubber: Scrubber) -> Example:
    return Example(
        id=example.id,
        kind=example.kind,
        prompt=[{"role": m["role"], "content": scrubber.scrub(m["content"])} for m in example.prompt],
        completion=scrubber.scrub(example.completion),
        rejected=scrubber.scrub(example.rejected) if example.rejected is not None else None,
        label=example.label,
        split=example.split,
        provenance=example.provenance,
    )
