"""The model server's state as a health check reports it: its `/health` asked with a short timeout,
and the result kept for a few seconds, so a flood of health checks costs the model server at most
one probe per `ttl`. `HealthCache` serves an event loop (the bot), `ThreadedHealthCache` threads
(the scheduler's monitor).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

TTL_SECONDS = 5.0
PROBE_SECONDS = 2.0


class HealthCache:
    """`await up()`: whether the model server answered its last probe. Callers arriving while a
    probe runs share it, and a caller that gives up (its request cancelled) does not cancel it."""

    def __init__(
        self,
        probe: Callable[[float], Awaitable[bool]],
        *,
        ttl: float = TTL_SECONDS,
        timeout: float = PROBE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe, self.ttl, self.timeout, self.clock = probe, ttl, timeout, clock
        self._up = False
        self._at: float | None = None
        self._running: asyncio.Future[bool] | None = None

    async def up(self) -> bool:
        if self._at is not None and self.clock() - self._at < self.ttl:
            return self._up
        if self._running is None:
            self._running = asyncio.ensure_future(self._ask())
        return await asyncio.shield(self._running)

    async def _ask(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                up = await self.probe(self.timeout)
        except Exception:  # a timeout or a failing probe: either way, not up
            log.debug("model server health probe failed", exc_info=True)
            up = False
        self._up, self._at, self._running = up, self.clock(), None
        return up


class ThreadedHealthCache:
    """`up()` for threaded servers: one probe at a time; the others wait for its answer."""

    def __init__(
        self,
        probe: Callable[[float], bool],
        *,
        ttl: float = TTL_SECONDS,
        timeout: float = PROBE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe, self.ttl, self.timeout, self.clock = probe, ttl, timeout, clock
        self._up = False
        self._at: float | None = None
        self._lock = threading.Lock()

    def up(self) -> bool:
        with self._lock:
            if self._at is None or self.clock() - self._at >= self.ttl:
                try:
                    self._up = self.probe(self.timeout)
                except Exception:
                    log.debug("model server health probe failed", exc_info=True)
                    self._up = False
                self._at = self.clock()
            return self._up
