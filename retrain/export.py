"""Write a dataset as JSONL for other fine-tuning tools.

  openai-chat  {"messages": [system, ..., user, assistant]}           OpenAI chat fine-tuning
  kto          {"prompt": [...], "completion": [assistant], "label"}  TRL KTOTrainer, conversational
  dpo          {"prompt": [...], "chosen": [...], "rejected": [...]}  TRL DPOTrainer, conversational

Each line is validated (roles, non-empty content, ends on the right role, length) before it is
written; what does not pass is counted with its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrain.dataset import Example, Message

FORMATS = ("openai-chat", "kto", "dpo")
ROLES = {"system", "user", "assistant"}
MAX_CHARS = 32_000


@dataclass
class ExportReport:
    written: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class InvalidLine(ValueError):
    pass


def _assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def to_openai_chat(example: Example) -> dict[str, Any] | None:
    if not example.label:
        return None  # supervised data only holds answers people wanted
    return {"messages": [*example.prompt, *_assistant(example.completion)]}


def to_kto(example: Example) -> dict[str, Any] | None:
    return {"prompt": example.prompt, "completion": _assistant(example.completion), "label": example.label}


def to_dpo(example: Example) -> dict[str, Any] | None:
    if example.rejected is None:
        return None  # a preference pair needs the answer the correction replaced
    return {
        "prompt": example.prompt,
        "chosen": _assistant(example.completion),
        "rejected": _assistant(example.rejected),
    }


CONVERTERS: dict[str, Callable[[Example], dict[str, Any] | None]] = {
    "openai-chat": to_openai_chat,
    "kto": to_kto,
    "dpo": to_dpo,
}


def validate_messages(messages: Any, *, last_role: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidLine("no messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidLine("bad role")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidLine("empty content")
    if messages[-1]["role"] != last_role:
        raise InvalidLine(f"does not end with {last_role}")
    if sum(len(m["content"]) for m in messages) > MAX_CHARS:
        raise InvalidLine("too long")


def validate(line: dict[str, Any], fmt: str) -> None:
    if fmt == "openai-chat":
        validate_messages(line.get("messages"), last_role="assistant")
    else:
        validate_messages(line.get("prompt"), last_role="user")
        for key in ("completion",) if fmt == "kto" else ("chosen", "rejected"):
            validate_messages(line.get(key), last_role="assistant")
        if fmt == "kto" and not isinstance(line.get("label"), bool):
            raise InvalidLine("label is not a boolean")
        if fmt == "dpo" and line["chosen"][0]["content"].strip() == line["rejected"][0]["content"].strip():
            raise InvalidLine("chosen equals rejected")


def export(examples: Iterable[Example], fmt: str, path: Path) -> ExportReport:
    if fmt not in CONVERTERS:
        raise ValueError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    report = ExportReport()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for example in examples:
            line = CONVERTERS[fmt](example)
            if line is None:
                report.dropped[f"not applicable to {fmt}"] += 1
                continue
            try:
                validate(line, fmt)
            except InvalidLine as exc:
                report.dropped[str(exc)] += 1
                continue
            if example.provenance:  # a key each format's readers ignore; kept for audits
                line["metadata"] = {"provenance": example.provenance}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            report.written += 1
    return report
