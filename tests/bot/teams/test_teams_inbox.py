"""Teams questions kept until answered (`bot.inbox`): a question is in SQL before the request that
brought it is answered, finished once answered; a replica that stops mid-answer leaves it to
another, which answers it in the same conversation. Two bots, one SQLite store, the local Connector."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlmodel import select

from bot.inbox import Inbox
from bot.teams.deps import TeamsDeps
from feedback.models import Answer, KeptEvent
from tests.support.common import eventually, migrated_database
from tests.support.fakes import FakeModel
from tests.support.teams_activities import message
from tests.support.teams_harness import TeamsBot, running_teams_bot

QUESTION = "how many days of leave do I get?"


def keeping(replica: str, stale: float = 30.0) -> Callable[[TeamsDeps], None]:
    def configure(deps: TeamsDeps) -> None:
        deps.inbox = Inbox(deps.records.database, replica=replica, stale=stale)

    return configure


def kept(bot: TeamsBot) -> list[KeptEvent]:
    with bot.database.reader() as session:
        return list(session.exec(select(KeptEvent)))


async def test_a_question_is_kept_before_the_request_is_answered(tmp_path: Path) -> None:
    model = FakeModel()
    model.gate = asyncio.Event()
    async with running_teams_bot(tmp_path, model=model, configure=keeping("replica-a")) as bot:
        response = await bot.send(message(QUESTION, service_url=bot.service_url))
        assert response.is_success
        [row] = kept(bot)  # written before the response came back
        assert row.owner == "replica-a" and row.finished_at is None and row.body["text"] == QUESTION
        model.gate.set()
        await bot.settled()
        assert kept(bot)[0].finished_at is not None


async def test_another_replica_answers_what_a_silent_one_acknowledged(tmp_path: Path) -> None:
    database = migrated_database(tmp_path / "shared.db")
    stuck = FakeModel()
    stuck.gate = asyncio.Event()  # replica A stops after two words, as if killed there
    async with (
        running_teams_bot(tmp_path, model=stuck, database=database, configure=keeping("replica-a")) as a,
        running_teams_bot(tmp_path, database=database, configure=keeping("replica-b", stale=0.2)) as b,
    ):
        assert (await a.send(message(QUESTION, service_url=a.service_url))).is_success
        await eventually(lambda: stuck.requests)
        assert b.deps.inbox is not None
        assert await b.deps.inbox.take_over() == 0  # not silent for long enough yet
        await asyncio.sleep(0.3)
        assert await b.deps.inbox.take_over() == 1
        await eventually(lambda: kept(b)[0].finished_at is not None)
        assert (kept(b)[0].owner, kept(b)[0].attempts) == ("replica-b", 2)
        with database.reader() as session:
            [answer] = session.exec(select(Answer)).all()
        assert "27 days" in answer.text
        # B answered in the question's conversation: through the serviceUrl it came with
        assert any("27 days" in (m.activity.get("text") or "") for m in a.connector.messages())
        stuck.gate.set()
    database.dispose()
