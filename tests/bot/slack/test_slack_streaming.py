"""Answers streamed into Slack threads (chat.startStream, appendStream, stopStream) end to end: the
real bot app, the local Slack Web API keeping each stream's pieces, a real SQLite store. What Slack
refuses midway still reaches the person as one whole answer, stored once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import select

from bot.errors import AnswerUnavailable
from bot.slack.blocks import escape
from bot.slack.deps import Deps
from feedback import queries
from feedback.models import Answer, Question
from tests.support.common import eventually
from tests.support.fakes import FakeModel
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import block_actions, mention, message_event

QUESTION = "<@U0BOT> how many days of leave do I get?"
LONG = "You get **27 days** of leave a year: 25 by law & 2 more < the company's gift > in every office."


def every_piece(deps: Deps) -> None:
    deps.stream_interval = 0  # each piece the model writes goes out as it comes


def answers(bot: Bot) -> list[Answer]:
    with bot.database.reader() as session:
        return list(session.exec(select(Answer)))


async def ask(bot: Bot, channel: str = "C1") -> dict:
    message = bot.slack.add_message(channel, "U1", QUESTION)
    await bot.send_event(mention(message, channel))
    await bot.slack.wait_for("chat.startStream")
    await bot.settled()
    return message


async def test_the_pieces_streamed_add_up_to_the_stored_answer_with_its_footer(tmp_path: Path) -> None:
    async with running_bot(tmp_path, model=FakeModel(LONG), configure=every_piece) as bot:
        asked = await ask(bot)
        [start] = bot.slack.called("chat.startStream")
        assert (start["channel"], start["thread_ts"]) == ("C1", asked["ts"])
        ts = bot.slack.replies[0]["ts"]
        pieces = bot.slack.streams[ts]
        assert len(pieces) > 3 and len(bot.slack.called("chat.appendStream")) == len(pieces) - 1
        [answer] = answers(bot)
        assert "".join(pieces) == escape(answer.text) == escape(LONG)
        assert (answer.reply_channel, answer.reply_ref) == ("C1", ts)

        [stop] = bot.slack.called("chat.stopStream")
        assert [b["type"] for b in stop["blocks"]] == ["context", "actions", "context_actions"]
        assert stop["metadata"]["event_payload"] == {"answer_id": answer.id}
        assert bot.slack.called("chat.postMessage") == []  # streamed, not posted

        # a 👍 on the streamed message is a vote on the stored answer
        message = bot.slack.message("C1", ts)
        feedback = stop["blocks"][-1]["elements"][0]
        action = {"type": "feedback_buttons", "action_id": feedback["action_id"], "block_id": "fb"}
        action["value"] = feedback["positive_button"]["value"]
        await bot.send_interaction(block_actions(user="U2", channel="C1", message=message, action=action))

        async def voted() -> bool:
            with bot.database.reader() as session:
                return [(v.user_id, v.value) for v in queries.votes_for(session, answer.id or 0)] == [
                    ("U2", 1)
                ]

        await eventually(voted)


async def test_appends_are_paced_by_the_interval_not_by_the_model(tmp_path: Path) -> None:
    model = FakeModel(LONG)
    model.gate = asyncio.Event()  # the first two words, then a pause

    def slow_pace(deps: Deps) -> None:
        deps.stream_interval = 60

    async with running_bot(tmp_path, model=model, configure=slow_pace) as bot:
        message = bot.slack.add_message("C1", "U1", QUESTION)
        await bot.send_event(mention(message, "C1"))
        await bot.slack.wait_for("chat.startStream")
        model.gate.set()
        await bot.slack.wait_for_replies()
        # the first piece at once, nothing more within the minute, the rest in one piece at the end
        [start] = bot.slack.called("chat.startStream")
        [rest] = bot.slack.called("chat.appendStream")
        assert start["markdown_text"] == "You" and start["markdown_text"] + rest["markdown_text"] == escape(
            LONG
        )
        assert len(bot.slack.called("chat.stopStream")) == 1


async def test_a_stream_slack_stops_midway_still_gives_one_whole_answer(tmp_path: Path) -> None:
    async with running_bot(tmp_path, model=FakeModel(LONG), configure=every_piece) as bot:
        bot.slack.fail_once("chat.appendStream", "message_not_in_streaming_state")
        await ask(bot)
        [answer] = answers(bot)
        assert len(bot.slack.called("chat.startStream")) == 1
        [update] = bot.slack.called("chat.update")
        ts = answer.reply_ref
        assert update["ts"] == ts and update["text"] == escape(LONG)
        message = bot.slack.message("C1", str(ts))
        assert message["text"] == escape(LONG)
        assert [b["type"] for b in message["blocks"]] == ["markdown", "context", "actions", "context_actions"]
        assert bot.slack.called("chat.postMessage") == [] and bot.slack.called("chat.stopStream") == []
        assert len(bot.slack.messages["C1"]) == 2  # the question and the one answer


async def test_where_slack_will_not_stream_the_answer_is_posted_whole(tmp_path: Path) -> None:
    async with running_bot(tmp_path, model=FakeModel(LONG)) as bot:
        bot.slack.fail_once("chat.startStream", "channel_type_not_supported")
        message = bot.slack.add_message("C1", "U1", QUESTION)
        await bot.send_event(mention(message, "C1"))
        [post] = await bot.slack.wait_for("chat.postMessage")
        await bot.settled()
        assert post["thread_ts"] == message["ts"]
        assert post["blocks"][0] == {"type": "markdown", "text": escape(LONG)}
        [answer] = answers(bot)
        assert answer.reply_ref == bot.slack.messages["C1"][-1]["ts"]


async def test_a_model_that_fails_midway_ends_the_stream_with_the_apology(tmp_path: Path) -> None:
    model = FakeModel(LONG)
    model.fail_after = 3
    async with running_bot(tmp_path, model=model, configure=every_piece) as bot:
        await ask(bot)
        [stop] = bot.slack.called("chat.stopStream")
        message = bot.slack.messages["C1"][-1]
        assert message["text"].startswith("You get")
        assert message["text"].endswith(escape(AnswerUnavailable.user_message))
        assert stop.get("blocks") in (None, [])  # no feedback controls: there is no answer to vote on
        assert answers(bot) == []
        with bot.database.reader() as session:
            assert len(list(session.exec(select(Question)))) == 1  # the question stays recorded


async def test_a_direct_message_thread_is_titled_after_its_question(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        message = bot.slack.add_message("D1", "U1", "how many days of leave do I get?")
        await bot.send_event(message_event(message, "D1", "im"))
        await bot.slack.wait_for_replies(channel="D1")
        [title] = bot.slack.called("assistant.threads.setTitle")
        assert (title["channel_id"], title["thread_ts"]) == ("D1", message["ts"])
        assert title["title"] == "how many days of leave do I get?"


async def test_the_messages_tab_suggests_the_most_asked_questions_once_they_repeat(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        opened = {
            "type": "app_home_opened",
            "user": "U1",
            "channel": "D1",
            "tab": "messages",
            "event_ts": "1.0",
        }
        await bot.send_event(opened)
        await bot.settled()
        assert bot.slack.called("assistant.threads.setSuggestedPrompts") == []  # nothing asked twice yet

        for user in ("U1", "U2"):
            message = bot.slack.add_message("C1", user, QUESTION)
            await bot.send_event(mention(message, "C1"))
        await bot.slack.wait_for_replies(count=2)
        await bot.settled()
        await bot.send_event({**opened, "event_ts": "2.0"})
        [prompts] = await bot.slack.wait_for("assistant.threads.setSuggestedPrompts")
        assert prompts["channel_id"] == "D1" and "thread_ts" not in prompts
        assert prompts["prompts"] == [
            {"title": "how many days of leave do I get?", "message": "how many days of leave do I get?"}
        ]

        await bot.send_event({**opened, "tab": "home", "event_ts": "3.0"})
        await bot.settled()
        assert len(bot.slack.called("assistant.threads.setSuggestedPrompts")) == 1  # the Messages tab only
