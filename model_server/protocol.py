"""The model server's wire protocol: vLLM's OpenAI-compatible API and its runtime LoRA endpoints.

Payloads, response parsing, the stream reader and the error mapping, none of which does I/O;
`send`, the one place a request goes out and is retried, is what `model_server.client` calls.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import httpx

from model_server.errors import (
    AdapterRejected,
    BadRequest,
    ModelNotFound,
    ModelServerRefused,
    ModelServerUnavailable,
    NotAuthorized,
)

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"
HEALTH = "/health"
LOAD_ADAPTER = "/v1/load_lora_adapter"
UNLOAD_ADAPTER = "/v1/unload_lora_adapter"

Message = dict[str, str]
# Only failures where the request never reached the server are retried.
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str
    finish_reason: str | None
    token_logprobs: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    # the first token's likeliest alternatives (token -> logprob), where top_logprobs were asked for
    first_alternatives: dict[str, float] = field(default_factory=dict)

    @property
    def confidence(self) -> float | None:
        """Geometric-mean token probability of the answer, in [0, 1]; None without logprobs."""
        if not self.token_logprobs:
            return None
        return math.exp(sum(self.token_logprobs) / len(self.token_logprobs))


class ChatOptions(TypedDict, total=False):
    """What a chat request may set besides the messages and the model (defaults in `chat_payload`)."""

    max_tokens: int
    temperature: float
    logprobs: bool
    stop: Sequence[str] | None
    seed: int | None
    top_logprobs: int


def chat_payload(
    messages: Sequence[Message], *, model: str, stream: bool = False, **options: Unpack[ChatOptions]
) -> dict[str, Any]:
    logprobs = options.get("logprobs", True)
    top_logprobs = options.get("top_logprobs", 0)
    stop, seed = options.get("stop"), options.get("seed")
    payload: dict[str, Any] = {
        "model": model,
        "messages": list(messages),
        "max_tokens": options.get("max_tokens", 256),
        "temperature": options.get("temperature", 0.0),
        "stream": stream,
    }
    if logprobs:
        payload["logprobs"] = True
        if top_logprobs:
            payload["top_logprobs"] = top_logprobs
    if stream:  # the last chunk then carries the token counts a whole completion's body has
        payload["stream_options"] = {"include_usage": True}
    if stop:
        payload["stop"] = list(stop)
    if seed is not None:
        payload["seed"] = seed
    return payload


def _token_logprobs(choice: dict[str, Any]) -> list[float]:
    content = (choice.get("logprobs") or {}).get("content") or []
    return [float(item["logprob"]) for item in content if item.get("logprob") is not None]


def _first_alternatives(choice: dict[str, Any]) -> dict[str, float]:
    content = (choice.get("logprobs") or {}).get("content") or []
    top = (content[0].get("top_logprobs") or []) if content else []
    return {str(item["token"]): float(item["logprob"]) for item in top if item.get("logprob") is not None}


def parse_chat(body: dict[str, Any], latency_ms: int) -> ChatResult:
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return ChatResult(
        text=choice["message"].get("content") or "",
        model=body.get("model", ""),
        finish_reason=choice.get("finish_reason"),
        token_logprobs=_token_logprobs(choice),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        latency_ms=latency_ms,
        first_alternatives=_first_alternatives(choice),
    )


class StreamReader:
    """Reads a streamed completion one SSE line at a time: `feed` gives each text delta as it
    comes; once `done`, `result()` is the whole completion, as `parse_chat` gives for one body."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.done = False
        self._started = time.perf_counter()
        self._texts: list[str] = []
        self._logprobs: list[float] = []
        self._model = ""
        self._finish: str | None = None
        self._usage: dict[str, Any] = {}

    def feed(self, line: str) -> str:
        """The text delta in one line: '' for lines and chunks without text, and after the end."""
        if self.done or not line.startswith("data:"):
            return ""
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return ""
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ModelServerRefused(
                200, f"The model server at {self.base_url} sent a malformed stream."
            ) from None
        if "error" in chunk:  # the status line was 200 already; both servers report failures this way
            raise _refusal(500, chunk)
        self._model = chunk.get("model") or self._model
        self._usage = chunk.get("usage") or self._usage
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        self._finish = choices[0].get("finish_reason") or self._finish
        self._logprobs += _token_logprobs(choices[0])
        text = str((choices[0].get("delta") or {}).get("content") or "")
        self._texts.append(text)
        return text

    def result(self) -> ChatResult:
        if not self.done:  # the connection closed without [DONE]: the answer may be cut short
            raise ModelServerUnavailable(self.base_url, "the answer's stream ended early")
        return ChatResult(
            text="".join(self._texts),
            model=self._model,
            finish_reason=self._finish,
            token_logprobs=self._logprobs,
            prompt_tokens=int(self._usage.get("prompt_tokens", 0)),
            completion_tokens=int(self._usage.get("completion_tokens", 0)),
            latency_ms=int((time.perf_counter() - self._started) * 1000),
        )


def _error_message(body: Any) -> str:
    # vLLM has used both {"error": {...}} and a flat {"object": "error", "message": ...}.
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:500]


def _refusal(status: int, body: Any, *, adapter_call: bool = False) -> ModelServerRefused:
    message = _error_message(body)
    if status == 401:
        return NotAuthorized(
            status,
            "The model server refused this request's API key: set MODEL_SERVER_API_KEY to the key it "
            "was started with.",
        )
    if adapter_call:
        # vLLM answers 500 for adapters it cannot serve (rank over the limit, modules_to_save),
        # 404 for a missing path and 400 for a name in use; each message says why.
        return AdapterRejected(status, message)
    if status == 404:
        return ModelNotFound(status, message)
    if status in (400, 422):
        return BadRequest(status, message)
    return ModelServerRefused(status, f"The model server failed ({status}): {message}")


def check(response: httpx.Response, *, adapter_call: bool = False) -> None:
    if response.is_success:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    raise _refusal(response.status_code, body, adapter_call=adapter_call)


def model_ids(body: dict[str, Any]) -> list[str]:
    return [str(item["id"]) for item in body.get("data", [])]


async def send(
    http: httpx.AsyncClient, base_url: str, retries: int, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One request; retried, with backoff, only where it never reached the server."""
    for attempt in range(retries + 1):
        try:
            return await http.request(method, path, **kwargs)
        except _RETRYABLE as exc:
            if attempt == retries:
                raise ModelServerUnavailable(base_url, type(exc).__name__) from exc
            await asyncio.sleep(0.2 * 2**attempt)
        except httpx.TimeoutException as exc:
            raise ModelServerUnavailable(base_url, "timed out") from exc
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(base_url, type(exc).__name__) from exc
    raise AssertionError("unreachable")
