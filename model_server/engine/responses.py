"""Response bodies, field for field as vLLM 0.32 serialises them (measured against a live server).

Callers parse either server with the same code, so even the fields we never fill (`refusal`,
`prompt_logprobs`, ...) are present with vLLM's null values, and streaming chunks carry exactly
the keys vLLM's `exclude_unset` serialisation leaves in.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

SYSTEM_FINGERPRINT = "embedded-transformers-engine"  # vLLM puts its version here; nobody parses it
OWNED_BY = "vllm"  # vLLM's value; clients that filter on it see the same list from either server
MIN_LOGPROB = -9999.0  # vLLM clamps -inf to this so the JSON stays valid


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability and the top alternatives at that step."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(8)}"


def _logprob_item(token: str, logprob: float) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": max(logprob, MIN_LOGPROB),
        "bytes": list(token.encode("utf-8", errors="replace")),
    }


def logprobs_json(entries: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {**_logprob_item(e.token, e.logprob), "top_logprobs": [_logprob_item(t, lp) for t, lp in e.top]}
            for e in entries
        ]
    }


def usage_json(prompt_tokens: int, completion_tokens: int, *, details: bool = True) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if details:
        usage |= {"prompt_tokens_details": None, "completion_tokens_details": None}
    return usage


@dataclass(frozen=True)
class Completion:
    id: str
    created: int
    model: str
    text: str
    finish_reason: str
    stop_reason: str | int | None
    logprobs: list[TokenLogprob] | None
    prompt_tokens: int
    completion_tokens: int


def completion_json(c: Completion) -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": c.text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "reasoning": None,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None if c.logprobs is None else logprobs_json(c.logprobs),
        "finish_reason": c.finish_reason,
        "stop_reason": c.stop_reason,
        "token_ids": None,
        "routed_experts": None,
    }
    return {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage_json(c.prompt_tokens, c.completion_tokens),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "prompt_text": None,
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def _chunk(cid: str, created: int, model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }


def role_chunk(cid: str, created: int, model: str) -> dict[str, Any]:
    choice = {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": None,
        "finish_reason": None,
    }
    return _chunk(cid, created, model, [choice]) | {"prompt_token_ids": None, "prompt_text": None}


def delta_chunk(
    cid: str,
    created: int,
    model: str,
    text: str,
    logprobs: list[TokenLogprob] | None,
    finish: tuple[str, str | int | None] | None = None,
    *,
    fingerprint: bool = True,
) -> dict[str, Any]:
    """A content delta; the last one also carries finish_reason (vLLM sends no separate empty chunk)."""
    choice: dict[str, Any] = {
        "index": 0,
        "delta": {"content": text},
        "logprobs": None if logprobs is None else logprobs_json(logprobs),
        "finish_reason": None if finish is None else finish[0],
    }
    if finish is not None:
        choice["stop_reason"] = finish[1]
    choice["token_ids"] = None
    chunk = _chunk(cid, created, model, [choice])
    if finish is not None and fingerprint:
        chunk["system_fingerprint"] = SYSTEM_FINGERPRINT
    return chunk


def usage_chunk(
    cid: str, created: int, model: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    chunk = _chunk(cid, created, model, [])
    return chunk | {
        "usage": usage_json(prompt_tokens, completion_tokens, details=False),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def model_card(model_id: str, root: str, parent: str | None, max_model_len: int | None) -> dict[str, Any]:
    now = int(time.time())
    permission = {
        "id": f"modelperm-{secrets.token_hex(8)}",
        "object": "model_permission",
        "created": now,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    return {
        "id": model_id,
        "object": "model",
        "created": now,
        "owned_by": OWNED_BY,
        "root": root,
        "parent": parent,
        "max_model_len": max_model_len,
        "permission": [permission],
    }
