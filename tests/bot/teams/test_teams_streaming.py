"""Answers streamed into Teams' one-to-one chats (informative update, streaming updates, final
message) against the local Connector, which checks the protocol as Teams does; elsewhere the whole
answer at once. Either way the answer is labelled AI-generated with its sources as citations."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botbuilder.schema import Activity
from sqlmodel import select

from bot.teams.stream import TeamsStream
from feedback.models import Answer
from tests.support.fakes import FakeModel
from tests.support.teams_activities import channel_thread, message
from tests.support.teams_harness import TeamsBot, running_teams_bot

LONG = "You get 27 days of leave a year: 25 by law and 2 more from the company, in every office."


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[TeamsBot]:
    async with running_teams_bot(tmp_path, model=FakeModel(LONG)) as running:
        running.deps.stream_interval = 0  # every piece the model writes goes out as it comes
        yield running


def answers(bot: TeamsBot) -> list[Answer]:
    with bot.database.reader() as session:
        return list(session.exec(select(Answer)))


def streamed(bot: TeamsBot) -> list[dict]:
    return [r.activity for r in bot.connector.typing() if r.activity.get("entities")]


async def ask(bot: TeamsBot, **kwargs: object) -> None:
    assert (
        await bot.send(message("how many days of leave?", service_url=bot.service_url, **kwargs))
    ).is_success
    await bot.connector.wait_for(lambda: bot.connector.messages())
    await bot.settled()


async def test_each_update_carries_the_whole_text_so_far_and_the_final_message_closes_the_stream(
    bot: TeamsBot,
) -> None:
    await ask(bot)
    updates = streamed(bot)[1:]
    assert len(updates) > 3
    texts = [u["text"] for u in updates]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    [reply] = bot.connector.messages()
    assert reply.activity["text"].startswith(LONG)
    [answer] = answers(bot)
    assert answer.text == LONG and answer.reply_ref == reply.id
    assert bot.connector.streams[reply.id].final


async def test_a_stream_the_person_stops_still_gives_one_whole_answer(bot: TeamsBot) -> None:
    bot.connector.refuse_streaming_after(1)  # the informative update only
    await ask(bot)
    [reply] = bot.connector.messages()
    kinds = [e["type"] for e in reply.activity["entities"]]
    assert kinds == ["https://schema.org/Message"]  # an ordinary message, not the stream's end
    assert reply.activity["text"].startswith(LONG)
    [answer] = answers(bot)
    assert answer.reply_ref == reply.id and answer.text == LONG


async def test_outside_personal_chats_the_answer_comes_whole_with_its_label_and_citations(
    bot: TeamsBot,
) -> None:
    await ask(bot, conversation=channel_thread("1718000000999"), mention=True)
    assert streamed(bot) == []  # Teams streams only in one-to-one chats
    [reply] = bot.connector.messages()
    [ai] = reply.activity["entities"]
    assert ai["additionalType"] == ["AIGeneratedContent"]
    assert [c["position"] for c in ai["citation"]] == [1, 2] and reply.activity["text"].endswith("[1][2]")


class _Replier:
    def __init__(self) -> None:
        self.sent: list[Activity] = []

    async def send(self, activity: Activity) -> str | None:
        self.sent.append(activity)
        return "stream-1" if len(self.sent) == 1 else None


async def test_updates_go_out_no_faster_than_the_interval() -> None:
    now = [0.0]
    replier = _Replier()
    stream = TeamsStream(replier, interval=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    await stream.inform("Searching…")
    for word in ["one", "two", "three", "four", "five"]:
        await stream.add(f"{word} ")
        now[0] += 0.4
    # 0.0 s: the informative update; 1.2 s: the first second passed; 2.0 s: too soon after it
    assert [a.text for a in replier.sent] == ["Searching…", "one two three four "]
    reply_id = await stream.finish(Activity(type="message", text="one two three four five"))
    assert reply_id == "stream-1" and replier.sent[-1].entities[-1].stream_type == "final"
