"""Questions acknowledged to a platform stay in SQL until answered, so a bot replica that dies
mid-question loses none of them.

Each platform keeps a question (`keep`, in table `kept_event`, owned by this replica) before the
platform hears its request answered: Slack through Bolt middleware (`bot.slack.inbox`), Teams in its
message handler (`bot.teams.questions`). Every replica says it is alive every `beat` seconds; the
questions of a replica silent for `stale` seconds are taken over by one live replica and handed to
the platform's `handlers` entry (by the key's prefix, "slack" or "teams"), which answers them as if
they had just come. An answer that died half-way may have left its first words in the thread; the
new one follows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.records import read, write
from feedback import store
from feedback.db import Database
from feedback.models import utcnow

log = logging.getLogger(__name__)
Payload = dict[str, Any]
Handler = Callable[[Payload], Awaitable[object]]
# answered questions are kept this long (for nobody), then pruned
KEEP_ANSWERED = timedelta(days=1)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Inbox:
    def __init__(
        self, database: Database, *, replica: str | None = None, stale: float = 30.0, beat: float = 5.0
    ) -> None:
        self.database = database
        self.replica = replica or replica_id()
        self.stale, self.beat = stale, beat
        self.handlers: dict[str, Handler] = {}

    async def keep(self, key: str, body: Payload) -> bool:
        """Written down for this replica to answer; False for a retry of one kept already."""
        return await write(
            self.database, lambda s: store.keep_event(s, key=key, body=body, owner=self.replica)
        )

    async def finish(self, key: str) -> None:
        await write(self.database, lambda s: store.finish_event(s, key=key))

    async def mine(self, key: str) -> bool:
        """Whether this replica took the question over from one that died."""
        return await read(self.database, lambda s: store.owns_event(s, key=key, owner=self.replica))

    async def take_over(self) -> int:
        """Say this replica is alive, then answer the questions of replicas that are not; how many."""
        await write(self.database, lambda s: store.beat(s, replica=self.replica))
        since = utcnow() - timedelta(seconds=self.stale)
        taken = await write(
            self.database, lambda s: store.take_over_events(s, replica=self.replica, silent_since=since)
        )
        for event in taken:
            handler = self.handlers.get(event.key.split(":", 1)[0])
            if handler is None:  # every replica runs the same platforms: none here means none anywhere
                log.error("%s was taken over, but this bot does not serve its platform", event.key)
                await self.finish(event.key)
                continue
            log.warning(
                "answering %s, acknowledged by %s, which stopped before answering", event.key, event.owner
            )
            await handler(event.body)
        return len(taken)

    async def prune(self) -> int:
        before = utcnow() - KEEP_ANSWERED
        return await write(self.database, lambda s: store.prune_kept_events(s, older_than=before))

    def running(self) -> Callable[[web.Application], AsyncIterator[None]]:
        """`run` for as long as the web application runs (an aiohttp cleanup context)."""

        async def context(_: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(self.run())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return context

    async def run(self) -> None:
        """Beat and take over until cancelled; a failure (SQL away) is logged and tried again."""
        beats = 0
        while True:
            try:
                await self.take_over()
                beats += 1
                if beats % 720 == 1:
                    await self.prune()
            except Exception:
                log.warning("could not check for questions left by other bot replicas", exc_info=True)
            await asyncio.sleep(self.beat)


async def settle(inbox: Inbox | None, key: str, answering: Awaitable[bool]) -> bool:
    """Runs `answering`; the kept question `key` is finished once it answered (True) or failed (another
    replica would fail the same way). It stays kept when cancelled (this replica is stopping) or False
    (another delivery of the same question is being answered)."""
    try:
        answered = await answering
    except asyncio.CancelledError:
        raise
    except Exception:
        if inbox is not None:
            await inbox.finish(key)
        raise
    if answered and inbox is not None:
        await inbox.finish(key)
    return answered
