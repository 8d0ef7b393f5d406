"""Slack questions end to end: signed requests over HTTP to the real bot app (Bolt + aiohttp), its Web
API calls answered and recorded by a local Slack, answers from the real pipeline with a fake
retriever and model server, recorded in a real SQLite store."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.errors import AnswerUnavailable
from bot.slack.blocks import GREETING, LOADING, THINKING
from feedback.models import Answer, Question
from tests.support.slack_api import BOT_ID, BOT_USER, OTHER_BOT_ID
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import event_callback, mention, message_event

QUESTION = "<@U0BOT> how many days of leave do I get?"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path) as running:
        yield running


def rows(bot: Bot, table: type[Question] | type[Answer]) -> list:
    with bot.database.reader() as session:
        return list(session.exec(select(table)))


async def test_url_verification_is_answered_with_the_challenge(bot: Bot) -> None:
    body = json.dumps(
        {"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY", "type": "url_verification"}
    )
    response = await bot.post_signed(body, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY"}


async def test_bad_signature_and_stale_timestamp_are_refused(bot: Bot) -> None:
    message = bot.slack.add_message("C1", "U1", QUESTION)
    event = mention(message, "C1")
    forged, _ = await bot.send_event(event, secret="not-the-signing-secret")
    stale, _ = await bot.send_event(event, timestamp=int(time.time()) - 6 * 60)
    unsigned = await bot.http.post("/slack/events", json=event_callback(event))
    assert (forged.status_code, stale.status_code, unsigned.status_code) == (401, 401, 401)
    await bot.settled()
    assert [c.method for c in bot.slack.calls] == ["auth.test"]  # the server's own check at start
    assert rows(bot, Question) == []


async def test_mention_is_answered_in_its_thread_with_sources_and_feedback_controls(bot: Bot) -> None:
    message = bot.slack.add_message("C1", "U1", QUESTION)
    started = time.perf_counter()
    response, _ = await bot.send_event(mention(message, "C1"))
    assert response.status_code == 200 and time.perf_counter() - started < 1.0

    [post] = await bot.slack.wait_for_replies()
    assert post["channel"] == "C1" and post["thread_ts"] == message["ts"] and post["streamed"]
    assert post["text"] == "You get 27 days of leave a year."
    assert [b["type"] for b in post["blocks"]] == ["context", "actions", "context_actions"]
    sources = [e["text"] for e in post["blocks"][0]["elements"]]
    assert sources == [
        "*Sources*",
        "1. <https://wiki.larkspur.example/leave?section=allowance&amp;v=2|Annual Leave &gt; Allowance>",
        "2. Annual Leave &gt; Carrying over · _benefits-and-leave/annual-leave.md_",
    ]
    [answer] = rows(bot, Answer)
    [button] = post["blocks"][1]["elements"]
    assert (button["action_id"], button["value"]) == ("suggest_correction", str(answer.id))
    [feedback] = post["blocks"][2]["elements"]
    assert feedback["type"] == "feedback_buttons" and feedback["action_id"] == "answer_feedback"
    assert feedback["positive_button"]["value"] == f"up:{answer.id}"
    assert feedback["negative_button"]["value"] == f"down:{answer.id}"
    assert post["metadata"] == {"event_type": "chatbot_answer", "event_payload": {"answer_id": answer.id}}

    # "is thinking…" first, in the same thread; the answer's Slack ts recorded for reactions.
    methods = [c.method for c in bot.slack.calls]
    assert methods.index("assistant.threads.setStatus") < methods.index("chat.startStream")
    [status] = bot.slack.called("assistant.threads.setStatus")
    assert (status["channel_id"], status["thread_ts"], status["status"]) == ("C1", message["ts"], THINKING)
    assert status["loading_messages"] == LOADING
    [start] = bot.slack.called("chat.startStream")
    assert (start["recipient_team_id"], start["recipient_user_id"]) == ("T0TEST", "U1")
    await bot.settled()
    [answer] = rows(bot, Answer)
    [question] = rows(bot, Question)
    assert (answer.reply_channel, answer.reply_ref) == ("C1", bot.slack.messages["C1"][-1]["ts"])
    assert (question.platform, question.channel, question.thread, question.user_id, question.workspace) == (
        "slack",
        "C1",
        message["ts"],
        "U1",
        "T0TEST",
    )
    assert question.text == "how many days of leave do I get?"
    assert bot.model.requests[0]["messages"][-1] == {"role": "user", "content": question.text}


async def test_direct_message_is_answered(bot: Bot) -> None:
    message = bot.slack.add_message("D1", "U1", "how many days of leave do I get?")
    await bot.send_event(message_event(message, "D1", "im"))
    [post] = await bot.slack.wait_for_replies(channel="D1")
    assert post["thread_ts"] == message["ts"] and post["text"] == "You get 27 days of leave a year."


async def test_follow_up_in_the_thread_is_answered_with_its_history(bot: Bot) -> None:
    first = bot.slack.add_message("C1", "U1", QUESTION)
    await bot.send_event(mention(first, "C1"))
    await bot.slack.wait_for_replies()
    await bot.settled()

    follow_up = bot.slack.add_message("C1", "U1", "And can I carry some over?", thread_ts=first["ts"])
    await bot.send_event(message_event(follow_up, "C1"))
    second = await bot.slack.wait_for_replies(count=2)
    assert second[1]["thread_ts"] == first["ts"]
    turns = [(m["role"], m["content"]) for m in bot.model.requests[1]["messages"][1:]]
    assert turns == [
        ("user", "how many days of leave do I get?"),
        ("assistant", "You get 27 days of leave a year."),
        ("user", "And can I carry some over?"),
    ]
    [replies] = bot.slack.called("conversations.replies")
    assert replies["channel"] == "C1" and replies["ts"] == first["ts"]


async def test_long_threads_are_read_to_the_end(bot: Bot) -> None:
    first = bot.slack.add_message("C1", "U1", QUESTION)
    await bot.send_event(mention(first, "C1"))
    await bot.slack.wait_for_replies()
    await bot.settled()
    for i in range(250):
        bot.slack.add_message("C1", "U2", f"chatter {i}", thread_ts=first["ts"])
    follow_up = bot.slack.add_message("C1", "U1", "And can I carry some over?", thread_ts=first["ts"])
    await bot.send_event(message_event(follow_up, "C1"))
    await bot.slack.wait_for_replies(count=2)
    assert len(bot.slack.called("conversations.replies")) == 2  # two pages of 200
    turns = [m["content"] for m in bot.model.requests[1]["messages"][1:]]
    assert turns[-2:] == ["chatter 249", "And can I carry some over?"]


async def test_threads_the_bot_never_joined_are_left_alone(bot: Bot) -> None:
    root = bot.slack.add_message("C1", "U1", "lunch anyone?")
    reply = bot.slack.add_message("C1", "U2", "yes, 12:30", thread_ts=root["ts"])
    top_level = bot.slack.add_message("C1", "U2", "good morning")
    await bot.send_event(message_event(reply, "C1"))
    await bot.send_event(message_event(top_level, "C1"))
    sentinel = bot.slack.add_message("C2", "U3", QUESTION)
    await bot.send_event(mention(sentinel, "C2"))
    await bot.slack.wait_for_replies()
    await bot.settled()
    assert [p["channel"] for p in bot.slack.replies] == ["C2"]
    assert [q.channel for q in rows(bot, Question)] == ["C2"]


async def test_a_retried_event_is_answered_once(bot: Bot) -> None:
    message = bot.slack.add_message("C1", "U1", QUESTION)
    event = mention(message, "C1")
    first, event_id = await bot.send_event(event)
    retry, _ = await bot.send_event(event, event_id=event_id, retry=1)
    again, _ = await bot.send_event(event, event_id=event_id, retry=2)
    assert [r.status_code for r in (first, retry, again)] == [200, 200, 200]
    await bot.slack.wait_for_replies()
    await bot.settled()
    assert len(bot.slack.replies) == 1 and len(bot.slack.called("chat.startStream")) == 1
    assert len(rows(bot, Question)) == 1 and len(bot.model.requests) == 1


async def test_bots_own_and_other_bots_messages_and_subtypes_are_ignored(bot: Bot) -> None:
    own = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": "my answer", "ts": "1.000001"}
    other = {"type": "message", "subtype": "bot_message", "bot_id": OTHER_BOT_ID, "text": "beep", "ts": "1.2"}
    other_mention = {
        "type": "app_mention",
        "user": "U9",
        "bot_id": OTHER_BOT_ID,
        "text": QUESTION,
        "ts": "1.3",
    }
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "message": {"user": "U1", "text": "how many days?", "ts": "1.4"},
        "ts": "1.5",
    }
    joined = {"type": "message", "subtype": "channel_join", "user": "U1", "text": "<@U1> joined", "ts": "1.6"}
    for event in (own, other, edited, joined):
        response, _ = await bot.send_event(message_event(event, "D1", "im"))
        assert response.status_code == 200
    await bot.send_event({**other_mention, "channel": "C1", "event_ts": "1.3"})

    sentinel = bot.slack.add_message("D1", "U1", "how many days of leave do I get?")
    await bot.send_event(message_event(sentinel, "D1", "im"))
    await bot.slack.wait_for_replies()
    await bot.settled()
    assert [p["thread_ts"] for p in bot.slack.replies] == [sentinel["ts"]]
    assert [q.text for q in rows(bot, Question)] == ["how many days of leave do I get?"]


async def test_model_server_down_gets_a_kind_message_and_the_question_is_kept(bot: Bot) -> None:
    bot.model.down = True
    message = bot.slack.add_message("C1", "U1", QUESTION)
    await bot.send_event(mention(message, "C1"))
    [post] = await bot.slack.wait_for_replies()
    assert post["thread_ts"] == message["ts"]
    assert post["text"] == AnswerUnavailable.user_message
    assert "Traceback" not in json.dumps(post) and "model.test" not in json.dumps(post)
    await bot.settled()
    assert [q.text for q in rows(bot, Question)] == ["how many days of leave do I get?"]
    assert rows(bot, Answer) == []


async def test_model_server_too_slow_gets_the_same_kind_message(bot: Bot) -> None:
    bot.model.too_slow = True
    message = bot.slack.add_message("D1", "U1", "how many days of leave do I get?")
    await bot.send_event(message_event(message, "D1", "im"))
    [post] = await bot.slack.wait_for_replies()
    assert post["text"] == AnswerUnavailable.user_message and post["thread_ts"] == message["ts"]


async def test_answers_come_after_the_ack(bot: Bot) -> None:
    bot.model.delay = 1.0
    message = bot.slack.add_message("C1", "U1", QUESTION)
    started = time.perf_counter()
    response, _ = await bot.send_event(mention(message, "C1"))
    acked = time.perf_counter() - started
    assert response.status_code == 200 and acked < 0.5
    assert bot.slack.called("chat.postMessage") == []
    await bot.slack.wait_for_replies()


async def test_slack_rate_limit_is_honoured(bot: Bot) -> None:
    bot.slack.rate_limit_once("chat.startStream", retry_after=1)
    message = bot.slack.add_message("C1", "U1", QUESTION)
    await bot.send_event(mention(message, "C1"))
    await bot.slack.wait_for_replies(timeout=15)
    posts = [c for c in bot.slack.calls if c.method == "chat.startStream"]
    assert [c.status for c in posts] == [429, 200]
    assert posts[1].at - posts[0].at >= 1.0
    await bot.settled()
    [answer] = rows(bot, Answer)
    assert answer.reply_ref == bot.slack.messages["C1"][-1]["ts"]


async def test_model_text_is_escaped(tmp_path: Path) -> None:
    from tests.support.fakes import FakeModel

    async with running_bot(tmp_path, model=FakeModel("Ask <!channel> & read <docs>")) as bot:
        message = bot.slack.add_message("C1", "U1", QUESTION)
        await bot.send_event(mention(message, "C1"))
        [post] = await bot.slack.wait_for_replies()
        assert post["text"] == "Ask &lt;!channel&gt; &amp; read &lt;docs&gt;"


async def test_assistant_thread_is_greeted_and_its_questions_answered(bot: Bot) -> None:
    root = bot.slack.add_message("D1", "U1", "New chat")
    root["subtype"] = "assistant_app_thread"
    thread = root["ts"]
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U1",
            "context": {"channel_id": "C1", "team_id": "T0TEST", "enterprise_id": None},
            "channel_id": "D1",
            "thread_ts": thread,
        },
        "event_ts": "1729999327.187300",
    }
    await bot.send_event(started)
    [greeting] = await bot.slack.wait_for_replies()
    assert (greeting["channel"], greeting["thread_ts"], greeting["text"]) == ("D1", thread, GREETING)

    question = bot.slack.add_message("D1", "U1", "how many days of leave?", thread_ts=thread)
    await bot.send_event(message_event(question, "D1", "im"))
    posts = await bot.slack.wait_for_replies(count=2)
    assert posts[1]["thread_ts"] == thread
    assert bot.slack.called("assistant.threads.setStatus", channel_id="D1", thread_ts=thread)
    # The greeting is not an answer: the model sees only the question.
    assert [m["role"] for m in bot.model.requests[0]["messages"]] == ["system", "user"]


async def test_chatbot_command_explains_how_to_use_the_bot(bot: Bot) -> None:
    response = await bot.send_command("/chatbot", "", user="U1", channel="C1")
    assert response.status_code == 200 and "How to ask me" in response.json()["text"]
    unknown = await bot.send_command("/chatbot", "frobnicate now", user="U1", channel="C1")
    assert "I don't know the command `frobnicate`" in unknown.json()["text"]


async def test_healthz(bot: Bot) -> None:
    response = await bot.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "slack": "http", "in_flight": 0}
