"""Questions kept until answered (`bot.inbox`, `bot.slack.inbox`): over HTTP against the real Bolt
app, two bot replicas on one SQLite store. A question is in SQL before Slack gets its 200; a replica
that stops mid-answer leaves it to another, which answers it in the same thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlmodel import select

from bot.inbox import Inbox
from bot.slack.deps import Deps
from feedback import store
from feedback.models import Answer, KeptEvent, utcnow
from tests.support.common import eventually, migrated_database
from tests.support.fakes import FakeModel
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import mention

QUESTION = "<@U0BOT> how many days of leave do I get?"


def kept(bot: Bot) -> list[KeptEvent]:
    with bot.database.reader() as session:
        return list(session.exec(select(KeptEvent)))


def keeping(replica: str, stale: float = 30.0) -> Callable[[Deps], None]:
    def configure(deps: Deps) -> None:
        deps.inbox = Inbox(deps.records.database, replica=replica, stale=stale)

    return configure


async def test_a_question_is_kept_before_the_ack_and_finished_once_answered(tmp_path: Path) -> None:
    model = FakeModel()
    model.gate = asyncio.Event()  # the answer stops after two words until set
    async with running_bot(tmp_path, model=model, configure=keeping("replica-a")) as bot:
        message = bot.slack.add_message("C1", "U1", QUESTION)
        response, event_id = await bot.send_event(mention(message, "C1"))
        assert response.status_code == 200
        [row] = kept(bot)  # written before the 200 came back
        assert (row.key, row.owner, row.finished_at) == (f"slack:{event_id}", "replica-a", None)
        assert row.body["event"]["text"] == QUESTION and "token" not in row.body
        model.gate.set()
        await bot.settled()
        assert kept(bot)[0].finished_at is not None


async def test_chatter_is_not_kept(tmp_path: Path) -> None:
    async with running_bot(tmp_path, configure=keeping("replica-a")) as bot:
        message = bot.slack.add_message("C1", "U1", "lunch anyone?")
        response, _ = await bot.send_event({**message, "channel": "C1", "channel_type": "channel"})
        assert response.status_code == 200
        await bot.settled()
        assert kept(bot) == []


async def test_another_replica_answers_what_a_silent_one_acknowledged(tmp_path: Path) -> None:
    stuck = FakeModel()
    stuck.gate = asyncio.Event()  # replica A stops answering after two words, as if killed there
    async with (
        running_bot(tmp_path, model=stuck, configure=keeping("replica-a")) as a,
        running_bot(tmp_path, configure=keeping("replica-b", stale=0.2)) as b,
    ):
        message = a.slack.add_message("C1", "U1", QUESTION)
        await a.send_event(mention(message, "C1"))
        await eventually(lambda: len(stuck.requests) >= 1)
        # B beats, A never does (it is stuck); after `stale` seconds B takes A's question over
        assert b.deps.inbox is not None
        assert await b.deps.inbox.take_over() == 0  # not yet
        await asyncio.sleep(0.3)
        assert await b.deps.inbox.take_over() == 1
        await eventually(lambda: kept(b)[0].finished_at is not None)
        row = kept(b)[0]
        assert (row.owner, row.attempts) == ("replica-b", 2)
        answer = next(r for r in b.slack.replies if r.get("thread_ts") == message["ts"])
        assert answer["channel"] == "C1"  # answered in the question's thread
        with b.database.reader() as session:
            answers = session.exec(select(Answer)).all()
        assert len(answers) == 1 and "27 days" in answers[0].text
        assert await b.deps.inbox.take_over() == 0  # answered: nobody takes it again
        stuck.gate.set()


async def test_a_live_replica_keeps_its_questions(tmp_path: Path) -> None:
    slow = FakeModel()
    slow.gate = asyncio.Event()
    async with (
        running_bot(tmp_path, model=slow, configure=keeping("replica-a", stale=0.2)) as a,
        running_bot(tmp_path, configure=keeping("replica-b", stale=0.2)) as b,
    ):
        message = a.slack.add_message("C1", "U1", QUESTION)
        await a.send_event(mention(message, "C1"))
        assert a.deps.inbox is not None and b.deps.inbox is not None
        for _ in range(3):  # A says it is alive; B finds nothing to take
            await a.deps.inbox.take_over()
            assert await b.deps.inbox.take_over() == 0
            await asyncio.sleep(0.1)
        slow.gate.set()


def test_a_question_that_stops_every_replica_is_given_up(tmp_path: Path) -> None:
    database = migrated_database(tmp_path / "chatbot.db")
    with database.writer() as session:
        assert store.keep_event(session, key="slack:E1", body={"event": {}}, owner="a")
        assert not store.keep_event(session, key="slack:E1", body={"event": {}}, owner="b")  # a retry
    for replica in ("b", "c"):
        with database.writer() as session:
            [taken] = store.take_over_events(session, replica=replica, silent_since=utcnow())
        assert taken.key == "slack:E1"
    with database.writer() as session:
        assert store.take_over_events(session, replica="d", silent_since=utcnow()) == []
        row = session.get(KeptEvent, "slack:E1")
        assert row is not None and row.finished_at is not None and row.attempts == 3
    database.dispose()
