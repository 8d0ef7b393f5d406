"""Several model servers serving the same base model and adapters, used as one client.

Questions are spread over them in turn; a replica that does not answer, answers with a server error,
or does not serve the asked adapter (yet) is passed over for the next one, and tried last for a while.
Adapters go to every replica: `load_adapter` returns only once each of them serves the adapter and
raises, naming the replica, where one cannot, so a promotion (`retrain.promote`) flips the pointer in
SQL only when every bot's next question can be answered by whichever replica it reaches. `models`
lists what every replica serves.

`ModelClient` (synchronous) wraps this as it wraps a single server; `connect` and `async_connect`
build either from a list of URLs (MODEL_SERVER_REPLICAS).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Unpack

from model_server.client import AsyncModelClient, ChatOptions, ChatResult, Message, ModelClient
from model_server.errors import ModelNotFound, ModelServerError, ModelServerRefused, ModelServerUnavailable

# a replica that failed is tried after the others for this long
PASS_OVER_SECONDS = 30.0


class ReplicaFailed(ModelServerRefused):
    """One replica could not do what every replica must (load or unload an adapter)."""

    def __init__(self, url: str, cause: ModelServerError) -> None:
        status = cause.status if isinstance(cause, ModelServerRefused) else 503
        super().__init__(status, f"The model server replica at {url} failed: {cause}")
        self.url, self.cause = url, cause


def worth_another(exc: ModelServerError) -> bool:
    """Whether another replica might answer where this one failed."""
    if isinstance(exc, ModelServerUnavailable | ModelNotFound):
        return True
    return isinstance(exc, ModelServerRefused) and exc.status >= 500


class AsyncReplicas(AsyncModelClient):
    def __init__(self, members: Sequence[AsyncModelClient]) -> None:
        if not members:
            raise ValueError("AsyncReplicas needs at least one model server")
        self.members = list(members)
        self.base_url = ", ".join(m.base_url for m in self.members)  # for messages only
        self.retries = self.members[0].retries
        self._turn = 0
        self._failed_at: dict[str, float] = {}

    @property
    def urls(self) -> list[str]:
        return [m.base_url for m in self.members]

    async def aclose(self) -> None:
        await asyncio.gather(*(m.aclose() for m in self.members))

    def order(self) -> list[AsyncModelClient]:
        """Every replica, starting with the next in turn; those that failed lately last."""
        start, self._turn = self._turn, (self._turn + 1) % len(self.members)
        turn = self.members[start:] + self.members[:start]
        now = time.monotonic()
        return sorted(turn, key=lambda m: now - self._failed_at.get(m.base_url, -1e9) < PASS_OVER_SECONDS)

    def _failed(self, member: AsyncModelClient) -> None:
        self._failed_at[member.base_url] = time.monotonic()

    async def health(self, *, timeout: float | None = None) -> bool:
        """Whether every replica answers /health."""
        answers = await asyncio.gather(*(m.health(timeout=timeout) for m in self.members))
        return all(answers)

    async def models(self) -> list[str]:
        """What every replica serves (an adapter loaded on some only is not listed)."""
        served = [await m.models() for m in self.members]
        return [name for name in served[0] if all(name in others for others in served[1:])]

    async def chat(
        self, messages: Sequence[Message], *, model: str, **options: Unpack[ChatOptions]
    ) -> ChatResult:
        last: ModelServerError | None = None
        for member in self.order():
            try:
                return await member.chat(messages, model=model, **options)
            except ModelServerError as exc:
                if not worth_another(exc):
                    raise
                self._failed(member)
                last = exc
        assert last is not None
        raise last

    async def chat_stream(
        self, messages: Sequence[Message], *, model: str, **options: Unpack[ChatOptions]
    ) -> AsyncIterator[str | ChatResult]:
        """Another replica takes over only before the first words: the reader has seen nothing yet."""
        last: ModelServerError | None = None
        for member in self.order():
            started = False
            try:
                async for part in member.chat_stream(messages, model=model, **options):
                    started = True
                    yield part
                return
            except ModelServerError as exc:
                if started or not worth_another(exc):
                    raise
                self._failed(member)
                last = exc
        assert last is not None
        raise last

    async def load_adapter(self, name: str, path: str) -> None:
        """Load on every replica that lacks it; the first that cannot stops it, named."""
        for member in self.members:
            try:
                if name not in await member.models():
                    await member.load_adapter(name, path)
            except ModelServerError as exc:
                raise ReplicaFailed(member.base_url, exc) from exc

    async def unload_adapter(self, name: str) -> None:
        """Unload from every replica that has it; one that cannot is named after trying the rest."""
        failures: list[ReplicaFailed] = []
        for member in self.members:
            try:
                if name in await member.models():
                    await member.unload_adapter(name)
            except ModelServerError as exc:
                failures.append(ReplicaFailed(member.base_url, exc))
        if failures:
            raise failures[0]


def async_connect(urls: Sequence[str], **options: Any) -> AsyncModelClient:
    """One server's client for one URL, `AsyncReplicas` for several (`options`: AsyncModelClient's)."""
    if len(urls) == 1:
        return AsyncModelClient(urls[0], **options)
    return AsyncReplicas([AsyncModelClient(url, **options) for url in urls])


def connect(urls: Sequence[str], **options: Any) -> ModelClient:
    return ModelClient(async_connect(urls, **options))


def members(client: ModelClient) -> list[ModelClient]:
    """Each replica behind `client` as a client of its own (just `client` for a single server)."""
    inner = getattr(client, "inner", None)  # a stand-in client (tests) may have none
    if isinstance(inner, AsyncReplicas):
        return [ModelClient(member) for member in inner.members]
    return [client]
