"""What the platforms' handlers (and the pipeline) write and read in the store, as coroutines.

The store's functions are synchronous and commit before they return; each runs here in a worker
thread, so the event loop (and every other request) keeps moving while SQL works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import Session

from feedback import queries, store
from feedback.db import Database

T = TypeVar("T")
PLATFORM = "slack"
# How long a reaction waits for its answer's Slack ts to be recorded: the ts is only known once
# chat.postMessage returns, and the reaction's event can race the write that follows it.
REPLY_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8)


@dataclass(frozen=True)
class AnswerPlace:
    """An answer's text and where it was shown."""

    answer_id: int
    text: str
    channel: str
    thread_ts: str


async def write(database: Database, work: Callable[[Session], T]) -> T:
    """`work` in one write transaction, in a worker thread."""

    def run() -> T:
        with database.writer() as session:
            return work(session)

    return await asyncio.to_thread(run)


async def read(database: Database, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with database.reader() as session:
            return work(session)

    return await asyncio.to_thread(run)


class Records:
    """`platform` is whose replies `answer_for_reply` looks among (Teams uses this class too)."""

    def __init__(self, database: Database, platform: str = PLATFORM) -> None:
        self.database = database
        self.platform = platform

    async def _write(self, work: Callable[[Session], T]) -> T:
        return await write(self.database, work)

    async def _read(self, work: Callable[[Session], T]) -> T:
        return await read(self.database, work)

    async def claim(self, key: str) -> bool:
        """True for the first delivery of an event, False for Slack's retries of it."""
        return await self._write(lambda s: store.claim_event(s, key=key))

    async def attach_reply(self, answer_id: int, channel: str, ts: str) -> None:
        await self._write(
            lambda s: store.attach_reply(s, answer_id=answer_id, reply_channel=channel, reply_ref=ts)
        )

    async def vote(
        self, *, answer_id: int, user_id: str, value: int, source: str, comment: str | None = None
    ) -> None:
        await self._write(
            lambda s: store.record_vote(
                s, answer_id=answer_id, user_id=user_id, value=value, source=source, comment=comment
            )
        )

    async def withdraw(self, *, answer_id: int, user_id: str, value: int, source: str) -> bool:
        return await self._write(
            lambda s: store.withdraw_vote(s, answer_id=answer_id, user_id=user_id, source=source, value=value)
        )

    async def correct(
        self, *, answer_id: int, author: str, text: str, author_conversation: dict[str, Any] | None = None
    ) -> int:
        """The new correction's id. `author_conversation`: see `store.submit_correction`."""

        def submit(session: Session) -> int:
            correction = store.submit_correction(
                session,
                answer_id=answer_id,
                author=author,
                text=text,
                author_conversation=author_conversation,
            )
            return correction.id or 0

        return await self._write(submit)

    async def answer_for_reply(self, channel: str, ts: str, *, wait: bool = False) -> int | None:
        """The answer shown as message `ts`; with `wait`, give a just-posted answer a moment to be
        recorded before deciding the message is not an answer."""

        def find(session: Session) -> int | None:
            row = queries.find_answer_by_reply(
                session, platform=self.platform, reply_channel=channel, reply_ref=ts
            )
            return row.id if row else None

        answer_id = await self._read(find)
        for pause in REPLY_WAITS if wait else ():
            if answer_id is not None:
                break
            await asyncio.sleep(pause)
            answer_id = await self._read(find)
        return answer_id

    async def most_asked(self, limit: int = 4, days: int = 90) -> list[str]:
        """The questions asked most often in the last `days` days and answered, most first."""
        since = datetime.now(UTC) - timedelta(days=days)
        return await self._read(lambda session: queries.most_asked(session, since=since, limit=limit))

    async def place(self, answer_id: int) -> AnswerPlace | None:
        def find(session: Session) -> AnswerPlace | None:
            answer = queries.get_answer(session, answer_id)
            if answer is None:
                return None
            question = queries.get_question(session, answer.question_id)
            channel = answer.reply_channel or (question.channel if question else "")
            return AnswerPlace(answer_id, answer.text, channel, question.thread if question else "")

        return await self._read(find)
