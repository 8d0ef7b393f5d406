"""Work that outlives the request that started it (an answer is written after the platform got its ack),
tracked so that shutting down waits for it instead of dropping a question half-answered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)

# Questions worked on at once, on every platform. The rest wait their turn, already acknowledged: under
# a burst this keeps the event loop free to acknowledge new events within Slack's 3 s
# (bench/slack_ack.py), and the model server from being swamped. The cost: in a burst, a waiting
# question shows "is thinking…" only when its turn comes.
MAX_CONCURRENT_ANSWERS = 8


def answering_limit() -> asyncio.Semaphore:
    return asyncio.Semaphore(MAX_CONCURRENT_ANSWERS)


class Inflight:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def count(self) -> int:
        """Tasks in flight now. (Not __len__: an idle tracker must not be falsy.)"""
        return len(self._tasks)

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count the current task as in flight until the block ends."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    async def drain(self, timeout: float = 30.0) -> int:
        """Wait up to `timeout` seconds for the work in flight; the number left unfinished."""
        pending = {t for t in self._tasks if t is not asyncio.current_task()}
        if not pending:
            return 0
        log.info("waiting for %d answer(s) in flight", len(pending))
        _, left = await asyncio.wait(pending, timeout=timeout)
        if left:
            log.warning("%d answer(s) still in flight after %.0f s; stopping anyway", len(left), timeout)
        return len(left)
