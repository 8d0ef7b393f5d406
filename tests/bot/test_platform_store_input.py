"""What Slack and Teams users send reaches the store alike on both databases: a Teams question holding
U+0000 is answered and stored (PostgreSQL once lost it), and answer ids no row can have, from a Teams
correction card or a Slack button, are "not found" for the person, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.errors import BotError
from bot.teams import cards
from feedback.db import Database
from feedback.models import Correction, Question
from tests.support.slack_harness import running_bot
from tests.support.slack_payloads import block_actions, mention
from tests.support.teams_activities import card_execute
from tests.support.teams_harness import running_teams_bot

HUGE = [2**31, 2**63]


async def test_a_teams_question_holding_nul_is_answered_and_stored(
    database: Database, tmp_path: Path
) -> None:
    async with running_teams_bot(tmp_path, database=database) as bot:
        reply = await bot.ask("How many days\x00 of leave do I get?")
        assert reply.activity["text"] != BotError.user_message  # an answer, not an apology
        assert len(bot.model.requests) == 1
    with database.reader() as s:
        [question] = s.exec(select(Question)).all()
    assert question.text == "How many days\ufffd of leave do I get?"


@pytest.mark.parametrize("answer_id", HUGE)
async def test_a_teams_correction_card_for_an_id_no_answer_has_says_so(
    database: Database, tmp_path: Path, answer_id: int
) -> None:
    async with running_teams_bot(tmp_path, database=database) as bot:
        data = {"action": "suggestCorrection", "answer_id": answer_id, "correction": "Something better."}
        response = await bot.send(card_execute("1718999999999", data, service_url=bot.service_url))
        assert response.status_code == 200
        assert response.json() == cards.card_error(cards.MISSING_ANSWER)
    with database.reader() as s:
        assert s.exec(select(Correction)).all() == []


# Past Python's 4300-digit int() limit, and a digit int() reads that is not ASCII.
@pytest.mark.parametrize("value", [str(i) for i in HUGE] + ["9" * 5000, "١"])
async def test_a_slack_correction_button_for_an_id_no_answer_has_says_so(tmp_path: Path, value: str) -> None:
    async with running_bot(tmp_path) as bot:
        question = bot.slack.add_message("C1", "U1", "How many days of leave do I get?")
        await bot.send_event(mention(question, "C1"))
        await bot.slack.wait_for_replies(channel="C1")
        await bot.settled()
        action = {
            "type": "button",
            "action_id": "suggest_correction",
            "block_id": "c",
            "value": value,
        }
        response = await bot.send_interaction(
            block_actions(user="U2", channel="C1", message=bot.slack.messages["C1"][-1], action=action)
        )
        assert response.status_code == 200
        [note] = await bot.slack.wait_for("chat.postEphemeral")
        assert note["user"] == "U2" and "can't find that answer" in note["text"]
        assert bot.slack.called("views.open") == []
