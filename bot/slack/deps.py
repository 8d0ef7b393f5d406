"""What the Slack listeners work with, handed in by whoever builds the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.admin import AdminCommands
from bot.inbox import Inbox
from bot.inflight import Inflight, answering_limit
from bot.pipeline import Pipeline
from bot.records import Records
from bot.review.desk import Outcome, ReviewDesk


@dataclass
class Deps:
    pipeline: Pipeline
    records: Records
    inflight: Inflight = field(default_factory=Inflight)
    answering: asyncio.Semaphore = field(default_factory=answering_limit)
    admin: AdminCommands | None = None  # `/chatbot` and its admin commands; None: not offered
    # Corrections go to reviewers through this; without it they are only stored.
    review: ReviewDesk | None = None
    review_channel: str = ""  # where review cards are posted; empty: not posted
    # After a decision taken on a card: tell an author who is not in Slack (a Teams author; see
    # `bot.review.news`). Returns a problem, already logged; None: nobody else is told.
    tell_elsewhere: Callable[[Outcome], Awaitable[str | None]] | None = None
    # Questions kept in SQL until answered, for another replica to answer if this one dies; None: not kept
    inbox: Inbox | None = None
    # Seconds between the pieces of a streamed answer (chat.appendStream): Slack's pace, not the model's.
    stream_interval: float = 1.0
