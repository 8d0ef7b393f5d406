"""Teams questions end to end: activities in Teams' shapes POSTed over HTTP to the real bot (a real
botbuilder CloudAdapter, authentication off), replies received by a local Bot Connector, answers
recorded in a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.errors import AnswerUnavailable, BotError
from bot.teams.cards import CARD_TYPE, GREETING, SEARCHING, USAGE
from feedback import queries
from feedback.models import Answer, Question
from tests.support.teams_activities import (
    ADA,
    BOT_ID,
    CHANNEL,
    GROUP,
    PERSONAL,
    TENANT,
    channel_thread,
    group_chat,
    message,
)
from tests.support.teams_harness import TeamsBot, running_teams_bot

ANSWER = "You get 27 days of leave a year."


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[TeamsBot]:
    async with running_teams_bot(tmp_path) as running:
        yield running


def questions(bot: TeamsBot) -> list[Question]:
    with bot.database.reader() as session:
        return list(session.exec(select(Question)))


def answers(bot: TeamsBot) -> list[Answer]:
    with bot.database.reader() as session:
        return list(session.exec(select(Answer)))


async def test_personal_message_is_answered_as_a_reply_with_sources_and_feedback_controls(
    bot: TeamsBot,
) -> None:
    asked = message("How many days of leave do I get?", service_url=bot.service_url)
    response = await bot.send(asked)
    assert response.status_code == 200
    await bot.connector.wait_for(lambda: bot.connector.messages())
    await bot.settled()

    [reply] = bot.connector.messages()
    assert reply.conversation == PERSONAL
    assert reply.reply_to == asked["id"]  # a reply to the question, at /activities/{id}
    sent = reply.activity
    assert sent["replyToId"] == asked["id"]
    assert sent["channelData"] == {"feedbackLoop": {"type": "default"}}
    assert "feedbackLoopEnabled" not in sent["channelData"]
    assert sent["from"]["id"] == BOT_ID and sent["recipient"]["id"] == ADA.teams_id
    assert sent["text"] == f"{ANSWER} [1][2]"  # the citations' pills go where the markers are
    ai, final = sent["entities"]
    assert final == {"type": "streaminfo", "streamId": reply.id, "streamType": "final"}
    assert ai["additionalType"] == ["AIGeneratedContent"] and ai["@type"] == "Message"
    assert [c["position"] for c in ai["citation"]] == [1, 2]
    assert ai["citation"][0]["appearance"] == {
        "@type": "DigitalDocument",
        "name": "Annual Leave > Allowance",
        "abstract": "benefits-and-leave/annual-leave.md",
        "url": "https://wiki.larkspur.example/leave?section=allowance&v=2",
    }
    assert "url" not in ai["citation"][1]["appearance"]  # no web address: the title still shows
    [attachment] = sent["attachments"]
    assert attachment["contentType"] == CARD_TYPE
    card = attachment["content"]
    texts = [block["text"] for block in card["body"]]
    assert texts[0] == ANSWER
    assert "Sources" in texts
    assert "1. [Annual Leave > Allowance](https://wiki.larkspur.example/leave?section=allowance&v=2)" in texts
    assert "2. Annual Leave > Carrying over · _benefits-and-leave/annual-leave.md_" in texts
    [show] = card["actions"]
    assert show["type"] == "Action.ShowCard" and show["title"] == "Suggest a correction"

    # streamed: "Searching…" first, then the text as it was written, into the one message
    assert bot.connector.typing()[0].activity.get("entities") is None  # "typing…" at once, in the turn
    informative, *updates = [t for t in bot.connector.typing() if t.activity.get("entities")]
    assert informative.activity["text"] == SEARCHING and informative.id == reply.id
    assert informative.activity["entities"] == [
        {"type": "streaminfo", "streamType": "informative", "streamSequence": 1}
    ]
    assert [u.activity["entities"][0]["streamSequence"] for u in updates] == list(range(2, len(updates) + 2))
    assert all(ANSWER.startswith(u.activity["text"]) for u in updates)
    assert bot.connector.received.index(informative) < bot.connector.received.index(reply)
    assert bot.connector.streams[reply.id].final

    [question] = questions(bot)
    assert (question.platform, question.text, question.user_id) == (
        "teams",
        "How many days of leave do I get?",
        ADA.aad_id,
    )
    assert (question.channel, question.workspace) == (PERSONAL, TENANT)
    [answer] = answers(bot)
    assert (answer.reply_channel, answer.reply_ref) == (PERSONAL, reply.id)


async def test_channel_mention_is_answered_in_its_thread_without_the_mention(bot: TeamsBot) -> None:
    asked = message(
        "how many days of leave do I get?",
        service_url=bot.service_url,
        conversation=channel_thread("1718000000999"),
        mention=True,
    )
    assert asked["text"].startswith("<at>Chatbot</at>")
    assert (await bot.send(asked)).status_code == 200
    await bot.connector.wait_for(lambda: bot.connector.messages())
    await bot.settled()
    [reply] = bot.connector.messages()
    assert reply.conversation == f"{CHANNEL};messageid=1718000000999"
    [question] = questions(bot)
    assert question.text == "how many days of leave do I get?"
    assert (question.channel, question.thread) == (CHANNEL, "1718000000999")
    # the model was asked the question without the mention
    assert "<at>" not in str(bot.model.requests[0]["messages"])


async def test_group_chat_message_without_a_mention_is_not_answered(bot: TeamsBot) -> None:
    chatter = message("lunch at noon?", service_url=bot.service_url, conversation=group_chat())
    assert (await bot.send(chatter)).status_code == 200
    await bot.settled()
    assert bot.connector.received == [] and questions(bot) == []

    asked = message(
        "how many days of leave?", service_url=bot.service_url, conversation=group_chat(), mention=True
    )
    await bot.send(asked)
    await bot.connector.wait_for(lambda: bot.connector.messages(GROUP))


async def test_the_same_activity_twice_is_answered_once(bot: TeamsBot) -> None:
    asked = message("How many days of leave do I get?", service_url=bot.service_url)
    first, retry = await bot.send(asked), await bot.send(asked)
    assert (first.status_code, retry.status_code) == (200, 200)
    await bot.connector.wait_for(lambda: bot.connector.messages())
    await bot.settled()
    assert len(bot.connector.messages()) == 1
    assert len(questions(bot)) == 1 and len(bot.model.requests) == 1


async def test_model_down_gets_a_short_apology_not_an_error(bot: TeamsBot) -> None:
    bot.model.down = True
    reply = await bot.ask()
    assert reply.activity["text"] == AnswerUnavailable.user_message
    assert "attachments" not in reply.activity or not reply.activity["attachments"]
    assert "feedbackLoop" not in str(reply.activity.get("channelData"))


async def test_a_failing_turn_tells_the_user_in_a_sentence(
    bot: TeamsBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> bool:
        raise RuntimeError("database exploded: secret connection string")

    monkeypatch.setattr(bot.deps.records, "claim", broken)
    response = await bot.send(message("hello?", service_url=bot.service_url))
    assert response.status_code == 200
    await bot.connector.wait_for(lambda: bot.connector.messages())
    [reply] = bot.connector.messages()
    assert reply.activity["text"] == BotError.user_message
    assert "exploded" not in str(reply.activity) and "Traceback" not in str(reply.activity)


async def test_empty_mention_gets_a_prompt_to_ask(bot: TeamsBot) -> None:
    reply = await bot.ask("", conversation=channel_thread("1718000000777"), mention=True)
    assert "question was empty" in reply.activity["text"]


async def test_help_explains_how_to_use_the_bot(bot: TeamsBot) -> None:
    reply = await bot.ask("help")
    assert reply.activity["text"] == USAGE
    assert bot.model.requests == []


async def test_installing_the_bot_in_a_personal_chat_says_hello(bot: TeamsBot) -> None:
    update = message("", service_url=bot.service_url)
    update |= {"type": "conversationUpdate", "membersAdded": [{"id": BOT_ID}, {"id": ADA.teams_id}]}
    del update["text"]
    assert (await bot.send(update)).status_code == 200
    [hello] = bot.connector.messages()
    assert hello.activity["text"] == GREETING


async def test_answer_is_found_by_its_reply(bot: TeamsBot) -> None:
    reply = await bot.ask()
    with bot.database.reader() as session:
        found = queries.find_answer_by_reply(
            session, platform="teams", reply_channel=PERSONAL, reply_ref=reply.id
        )
    assert found is not None and found.text == ANSWER
