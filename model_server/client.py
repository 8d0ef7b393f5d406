"""The one client for the model server, used by bot/ and retrain/.

It speaks vLLM's OpenAI-compatible API (plus the runtime LoRA endpoints), so it works against
real vLLM, our embedded engine, or a user's existing vLLM. `ModelClient` is synchronous,
`AsyncModelClient` asynchronous; both share the payloads and the parsing below.

`chat` answers in one piece; `chat_stream` yields the text as it is generated and then the same
`ChatResult` (log-probabilities and token counts included, which both servers stream when asked).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from model_server.errors import (
    AdapterRejected,
    BadRequest,
    ModelNotFound,
    ModelServerRefused,
    ModelServerUnavailable,
)

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


def chat_payload(
    messages: Sequence[Message],
    *,
    model: str,
    max_tokens: int,
    temperature: float,
    logprobs: bool,
    stop: Sequence[str] | None,
    seed: int | None,
    stream: bool = False,
    top_logprobs: int = 0,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": list(messages),
        "max_tokens": max_tokens,
        "temperature": temperature,
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
    if adapter_call:
        # vLLM answers 500 for adapters it cannot serve (rank over the limit, modules_to_save),
        # 404 for a missing path and 400 for a name in use; each message says why.
        return AdapterRejected(status, message)
    if status == 404:
        return ModelNotFound(status, message)
    if status in (400, 422):
        return BadRequest(status, message)
    return ModelServerRefused(status, f"The model server failed ({status}): {message}")


def _check(response: httpx.Response, *, adapter_call: bool = False) -> None:
    if response.is_success:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    raise _refusal(response.status_code, body, adapter_call=adapter_call)


def _model_ids(body: dict[str, Any]) -> list[str]:
    return [str(item["id"]) for item in body.get("data", [])]


class ModelClient:
    """Synchronous client. `transport` lets tests hand in an `httpx.MockTransport`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                return self._http.request(method, path, **kwargs)
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
                time.sleep(0.2 * 2**attempt)
            except httpx.TimeoutException as exc:
                raise ModelServerUnavailable(self.base_url, "timed out") from exc
            except httpx.TransportError as exc:
                raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
        raise AssertionError("unreachable")

    def health(self, *, timeout: float | None = None) -> bool:
        """Whether /health answers 2xx. With `timeout`: one try, each step (connect, read) within it."""
        try:
            if timeout is None:
                return self._send("GET", "/health").is_success
            return self._http.get("/health", timeout=timeout).is_success
        except (ModelServerUnavailable, httpx.TransportError):
            return False

    def models(self) -> list[str]:
        response = self._send("GET", "/v1/models")
        _check(response)
        return _model_ids(response.json())

    def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        logprobs: bool = True,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        top_logprobs: int = 0,
    ) -> ChatResult:
        payload = chat_payload(
            messages,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=logprobs,
            stop=stop,
            seed=seed,
            top_logprobs=top_logprobs,
        )
        started = time.perf_counter()
        response = self._send("POST", "/v1/chat/completions", json=payload)
        _check(response)
        return parse_chat(response.json(), int((time.perf_counter() - started) * 1000))

    def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        logprobs: bool = True,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Iterator[str | ChatResult]:
        """Yield the answer's text deltas as they are generated, then the whole `ChatResult`."""
        payload = chat_payload(
            messages,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=logprobs,
            stop=stop,
            seed=seed,
            stream=True,
        )
        reader = StreamReader(self.base_url)
        try:
            with self._http.stream("POST", "/v1/chat/completions", json=payload) as response:
                if not response.is_success:
                    response.read()
                    _check(response)
                for line in response.iter_lines():
                    if delta := reader.feed(line):
                        yield delta
                    if reader.done:
                        break
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
        yield reader.result()

    def stream(self, messages: Sequence[Message], *, model: str, **options: Any) -> Iterator[str]:
        """Yield the answer's text as it is generated (`chat_stream`'s options, no logprobs)."""
        for item in self.chat_stream(messages, model=model, logprobs=False, **options):
            if isinstance(item, str):
                yield item

    def load_adapter(self, name: str, path: str) -> None:
        response = self._send("POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        _check(response, adapter_call=True)

    def unload_adapter(self, name: str) -> None:
        response = self._send("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        _check(response, adapter_call=True)


class AsyncModelClient:
    """Asynchronous twin of `ModelClient`, for the bot's event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                return await self._http.request(method, path, **kwargs)
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
                await asyncio.sleep(0.2 * 2**attempt)
            except httpx.TimeoutException as exc:
                raise ModelServerUnavailable(self.base_url, "timed out") from exc
            except httpx.TransportError as exc:
                raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
        raise AssertionError("unreachable")

    async def health(self, *, timeout: float | None = None) -> bool:
        """Whether /health answers 2xx. With `timeout`: one try, each step (connect, read) within it."""
        try:
            if timeout is None:
                return (await self._send("GET", "/health")).is_success
            return (await self._http.get("/health", timeout=timeout)).is_success
        except (ModelServerUnavailable, httpx.TransportError):
            return False

    async def models(self) -> list[str]:
        response = await self._send("GET", "/v1/models")
        _check(response)
        return _model_ids(response.json())

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        logprobs: bool = True,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        top_logprobs: int = 0,
    ) -> ChatResult:
        payload = chat_payload(
            messages,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=logprobs,
            stop=stop,
            seed=seed,
            top_logprobs=top_logprobs,
        )
        started = time.perf_counter()
        response = await self._send("POST", "/v1/chat/completions", json=payload)
        _check(response)
        return parse_chat(response.json(), int((time.perf_counter() - started) * 1000))

    async def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        logprobs: bool = True,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> AsyncIterator[str | ChatResult]:
        """Yield the answer's text deltas as they are generated, then the whole `ChatResult`."""
        payload = chat_payload(
            messages,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=logprobs,
            stop=stop,
            seed=seed,
            stream=True,
        )
        reader = StreamReader(self.base_url)
        try:
            async with self._http.stream("POST", "/v1/chat/completions", json=payload) as response:
                if not response.is_success:
                    await response.aread()
                    _check(response)
                async for line in response.aiter_lines():
                    if delta := reader.feed(line):
                        yield delta
                    if reader.done:
                        break
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
        yield reader.result()

    async def stream(self, messages: Sequence[Message], *, model: str, **options: Any) -> AsyncIterator[str]:
        """Yield the answer's text as it is generated (`chat_stream`'s options, no logprobs)."""
        async for item in self.chat_stream(messages, model=model, logprobs=False, **options):
            if isinstance(item, str):
                yield item

    async def load_adapter(self, name: str, path: str) -> None:
        response = await self._send(
            "POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}
        )
        _check(response, adapter_call=True)

    async def unload_adapter(self, name: str) -> None:
        response = await self._send("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        _check(response, adapter_call=True)
