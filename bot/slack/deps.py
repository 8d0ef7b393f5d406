"""What the Slack listeners work with, handed in by whoever builds the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.admin import AdminCommands
from bot.curation import Outcome, ReviewDesk
from bot.pipeline import Pipeline
from bot.slack.inflight import Inflight
from bot.slack.records import Records

# Questions worked on at once. The rest wait their turn, already acknowledged: under a burst this keeps
# the event loop free to acknowledge new events within Slack's 3 s (bench/slack_ack.py), and the model
# server from being swamped. The cost: in a burst, a waiting question shows "is thinking…" only when
# its turn comes.
MAX_CONCURRENT_ANSWERS = 8


@dataclass
class Deps:
    pipeline: Pipeline
    records: Records
    inflight: Inflight = field(default_factory=Inflight)
    answering: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_ANSWERS))
    admin: AdminCommands | None = None  # `/chatbot retrain|status|rollback|adapters`; None: not offered
    # Corrections go to reviewers through this; without it they are only stored.
    review: ReviewDesk | None = None
    review_channel: str = ""  # where review cards are posted; empty: not posted
    # After a decision taken on a card: tell an author who is not in Slack (a Teams author; see
    # `bot.review_news`). Returns a problem, already logged; None: nobody else is told.
    tell_elsewhere: Callable[[Outcome], Awaitable[str | None]] | None = None
