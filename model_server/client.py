"""The one client for the model server, used by bot/ and retrain/.

It speaks vLLM's OpenAI-compatible API (plus the runtime LoRA endpoints; `model_server.protocol`),
so it works against real vLLM, our embedded engine, or a user's existing vLLM. `AsyncModelClient`
is the client; `ModelClient` runs it for synchronous callers (the retrain, the CLI) on an event
loop of its own, so the transport and its retries exist once.

`chat` answers in one piece; `chat_stream` yields the text as it is generated and then the same
`ChatResult` (log-probabilities and token counts included, which both servers stream when asked).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar, Unpack

import httpx

from model_server import protocol
from model_server.errors import ModelServerUnavailable
from model_server.protocol import (
    ChatOptions,
    ChatResult,
    Message,
    StreamReader,
    chat_payload,
    check,
    parse_chat,
)

__all__ = ["AsyncModelClient", "ChatOptions", "ChatResult", "Message", "ModelClient"]

T = TypeVar("T")


class AsyncModelClient:
    """`api_key`: sent as a bearer token (vLLM's `--api-key`, the engine's too). `transport` lets
    tests hand in an `httpx.MockTransport`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retries: int = 2,
        api_key: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await protocol.send(self._http, self.base_url, self.retries, method, path, **kwargs)

    async def health(self, *, timeout: float | None = None) -> bool:
        """Whether /health answers 2xx. With `timeout`: one try, each step (connect, read) within it."""
        try:
            if timeout is None:
                return (await self._send("GET", protocol.HEALTH)).is_success
            return (await self._http.get(protocol.HEALTH, timeout=timeout)).is_success
        except (ModelServerUnavailable, httpx.TransportError):
            return False

    async def models(self) -> list[str]:
        response = await self._send("GET", protocol.MODELS)
        check(response)
        return protocol.model_ids(response.json())

    async def chat(
        self, messages: Sequence[Message], *, model: str, **options: Unpack[ChatOptions]
    ) -> ChatResult:
        started = time.perf_counter()
        response = await self._send(
            "POST", protocol.CHAT, json=chat_payload(messages, model=model, **options)
        )
        check(response)
        return parse_chat(response.json(), int((time.perf_counter() - started) * 1000))

    async def chat_stream(
        self, messages: Sequence[Message], *, model: str, **options: Unpack[ChatOptions]
    ) -> AsyncIterator[str | ChatResult]:
        """Yield the answer's text deltas as they are generated, then the whole `ChatResult`."""
        payload = chat_payload(messages, model=model, stream=True, **options)
        reader = StreamReader(self.base_url)
        try:
            async with self._http.stream("POST", protocol.CHAT, json=payload) as response:
                if not response.is_success:
                    await response.aread()
                    check(response)
                async for line in response.aiter_lines():
                    if delta := reader.feed(line):
                        yield delta
                    if reader.done:
                        break
        except httpx.TransportError as exc:
            raise ModelServerUnavailable(self.base_url, type(exc).__name__) from exc
        yield reader.result()

    async def load_adapter(self, name: str, path: str) -> None:
        response = await self._send(
            "POST", protocol.LOAD_ADAPTER, json={"lora_name": name, "lora_path": path}
        )
        check(response, adapter_call=True)

    async def unload_adapter(self, name: str) -> None:
        response = await self._send("POST", protocol.UNLOAD_ADAPTER, json={"lora_name": name})
        check(response, adapter_call=True)


class ModelClient:
    """`AsyncModelClient` for synchronous code, safe to share between threads (the gate asks from
    several at once)."""

    def __init__(
        self,
        base_url: str | AsyncModelClient,
        *,
        timeout: float = 120.0,
        retries: int = 2,
        api_key: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`base_url` may be an `AsyncModelClient` to run (`model_server.replicas.connect`)."""
        if isinstance(base_url, AsyncModelClient):
            self._client = base_url
        else:
            self._client = AsyncModelClient(
                base_url, timeout=timeout, retries=retries, api_key=api_key, transport=transport
            )
        self.base_url = self._client.base_url

    @property
    def inner(self) -> AsyncModelClient:
        return self._client

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, _background_loop()).result()

    def close(self) -> None:
        self._run(self._client.aclose())

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self, *, timeout: float | None = None) -> bool:
        return self._run(self._client.health(timeout=timeout))

    def models(self) -> list[str]:
        return self._run(self._client.models())

    def chat(self, messages: Sequence[Message], *, model: str, **options: Unpack[ChatOptions]) -> ChatResult:
        return self._run(self._client.chat(messages, model=model, **options))

    def load_adapter(self, name: str, path: str) -> None:
        self._run(self._client.load_adapter(name, path))

    def unload_adapter(self, name: str) -> None:
        self._run(self._client.unload_adapter(name))


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop thread per process for every `ModelClient` (a daemon: it never holds up exit)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():  # a forked child has the loop but not its thread
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="model-client", daemon=True).start()
        return _loop
