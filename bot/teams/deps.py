"""What the Teams handlers work with, handed in by whoever builds the bot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.inbox import Inbox
from bot.inflight import Inflight, answering_limit
from bot.pipeline import Pipeline
from bot.records import Records
from bot.review.desk import ReviewDesk
from bot.review.news import Tell

log = logging.getLogger(__name__)


class AdminReplyLike(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def image(self) -> Path | None: ...


class Admin(Protocol):
    """`bot.admin.AdminCommands`: refuses non-admins itself."""

    def is_admin(self, user_id: str) -> bool: ...
    async def handle(self, user_id: str, text: str, *, platform: str, channel: str) -> AdminReplyLike: ...
    async def refuse(self, user_id: str, text: str, *, platform: str, channel: str, reason: str) -> None: ...


@dataclass
class TeamsDeps:
    """`records` must be built with platform "teams". `app_id` is the bot's Microsoft app id (empty
    in the Emulator's unauthenticated mode): answers are sent after the request that asked has been
    answered, as a proactive turn in the bot's own name. `inflight` and `answering` may be shared
    with Slack, so shutdown waits for both and the model server sees one limit."""

    pipeline: Pipeline
    records: Records
    app_id: str = ""
    admin: Admin | None = None
    review: ReviewDesk | None = None  # the review card ("review" in a chat with the bot)
    on_decided: Tell | None = None  # who else hears of a review decision taken in Teams
    inflight: Inflight = field(default_factory=Inflight)
    answering: asyncio.Semaphore = field(default_factory=answering_limit)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # Questions kept in SQL until answered, for another replica to answer if this one dies (bot.inbox)
    inbox: Inbox | None = None
    # Seconds between the updates of a streamed answer: Teams takes one a second.
    stream_interval: float = 1.0

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the current request is answered; kept referenced until it ends."""
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Teams background work failed", exc_info=task.exception())
