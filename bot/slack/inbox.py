"""Questions acknowledged to Slack stay in SQL until answered, so a bot replica that dies
mid-question loses none of them.

Bolt acknowledges an Events API delivery only after its middleware has run, and `Inbox.keep` is
middleware: a question is in SQL (`kept_event`, owned by this replica) before Slack hears 200.
Every replica says it is alive every `beat` seconds; the questions of a replica silent for `stale`
seconds are taken over by one live replica and dispatched through its app again (as a Socket Mode
request: the signature was checked when the question first came), whose listener answers them as
if they had just come. An answer that died half-way may have left its first words in the thread;
the new one follows them.
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
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.records import read, write
from bot.slack import fields, translate
from feedback import store
from feedback.db import Database
from feedback.models import utcnow

log = logging.getLogger(__name__)
Payload = dict[str, Any]
# answered questions are kept this long (for nobody), then pruned
KEEP_ANSWERED = timedelta(days=1)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def is_question(body: Payload, bot_user_id: str | None) -> bool:
    """What the question listeners (`bot.slack.listeners.questions`) would answer."""
    if body.get("type") != "event_callback":
        return False
    event = fields.obj(body.get("event"))
    if event.get("type") == "app_mention":
        return not translate.is_from_bot(event) and not event.get("subtype") and translate.is_placed(event)
    if event.get("type") == "message":
        return translate.message_kind(event, bot_user_id=bot_user_id) is not None
    return False


class Inbox:
    def __init__(
        self, database: Database, *, replica: str | None = None, stale: float = 30.0, beat: float = 5.0
    ) -> None:
        self.database = database
        self.replica = replica or replica_id()
        self.stale, self.beat = stale, beat

    async def keep(
        self, body: Payload, context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        """Bolt middleware: a question is written down before Bolt acknowledges it."""
        if is_question(body, context.bot_user_id):
            key = translate.delivery_key(body)
            await write(self.database, lambda s: store.keep_event(s, key=key, body=body, owner=self.replica))
        return await next()

    async def finish(self, body: Payload) -> None:
        key = translate.delivery_key(body)
        await write(self.database, lambda s: store.finish_event(s, key=key))

    async def mine(self, body: Payload) -> bool:
        """Whether this replica took the question over from one that died."""
        key = translate.delivery_key(body)
        return await read(self.database, lambda s: store.owns_event(s, key=key, owner=self.replica))

    async def take_over(self, app: AsyncApp) -> int:
        """Say this replica is alive, then answer the questions of replicas that are not; how many."""
        await write(self.database, lambda s: store.beat(s, replica=self.replica))
        since = utcnow() - timedelta(seconds=self.stale)
        taken = await write(
            self.database, lambda s: store.take_over_events(s, replica=self.replica, silent_since=since)
        )
        for event in taken:
            log.warning(
                "answering %s, acknowledged by %s, which stopped before answering", event.key, event.owner
            )
            await app.async_dispatch(AsyncBoltRequest(body=event.body, mode="socket_mode"))
        return len(taken)

    async def prune(self) -> int:
        before = utcnow() - KEEP_ANSWERED
        return await write(self.database, lambda s: store.prune_kept_events(s, older_than=before))

    def running(self, app: AsyncApp) -> Callable[[web.Application], AsyncIterator[None]]:
        """`run` for as long as the web application runs (an aiohttp cleanup context)."""

        async def context(_: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(self.run(app))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return context

    async def run(self, app: AsyncApp) -> None:
        """Beat and take over until cancelled; a failure (SQL away) is logged and tried again."""
        beats = 0
        while True:
            try:
                await self.take_over(app)
                beats += 1
                if beats % 720 == 1:
                    await self.prune()
            except Exception:
                log.warning("could not check for questions left by other bot replicas", exc_info=True)
            await asyncio.sleep(self.beat)
