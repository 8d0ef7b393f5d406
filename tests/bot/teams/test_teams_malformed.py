"""Feedback clicks and card actions whose values are not what Teams sends: a 400 (or, for a
correction form, the form's own error), nothing stored, never a 500. On both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from bot.teams import cards
from feedback.db import Database
from feedback.models import Correction, ProcessedEvent, Vote
from tests.support.teams_activities import card_execute, card_submit, feedback_invoke
from tests.support.teams_harness import TeamsBot, running_teams_bot


@pytest.fixture
async def bot(tmp_path: Path, database: Database) -> AsyncIterator[TeamsBot]:
    async with running_teams_bot(tmp_path, database=database) as running:
        yield running


def stored(bot: TeamsBot) -> tuple[int, int, int]:
    """Votes, corrections and claimed deliveries: all zero when nothing was stored."""
    with bot.database.reader() as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Vote, Correction, ProcessedEvent)
        )


@pytest.mark.parametrize(
    "value",
    [
        {"actionValue": "x"},
        {"actionValue": ["like"]},
        {"actionValue": {"reaction": 1}},
        {"actionValue": {"reaction": None, "feedback": "{}"}},
        {"actionName": "feedback"},
        "x",
        [1, 2],
        7,
    ],
)
async def test_a_feedback_click_with_a_wrong_value_is_400(bot: TeamsBot, value: Any) -> None:
    reply = await bot.ask()
    before = stored(bot)
    invoke = feedback_invoke(reply.id, "like", service_url=bot.service_url) | {"value": value}
    response = await bot.send(invoke)
    assert response.status_code == 400
    await bot.settled()
    assert stored(bot) == before


@pytest.mark.parametrize(
    "value", [{"action": "x"}, {"action": ["suggestCorrection"]}, {"trigger": "manual"}, "x"]
)
async def test_a_card_action_with_a_wrong_value_is_400_with_the_forms_error(
    bot: TeamsBot, value: Any
) -> None:
    reply = await bot.ask()
    before = stored(bot)
    invoke = card_execute(reply.id, {"action": "suggestCorrection"}, service_url=bot.service_url)
    response = await bot.send(invoke | {"value": value})
    assert response.status_code == 400
    assert response.json() == cards.card_error(cards.BAD_SUBMISSION)
    await bot.settled()
    assert stored(bot) == before


IMPOSSIBLE_IDS = [
    *(2**31, str(2**31), 2**63, str(2**63), "9" * 5000, "abc", -1, "-1", 0, 1.5, True, "١", None),
    *([1], {"id": 1}, "9" * 400),
]


@pytest.mark.parametrize("answer_id", IMPOSSIBLE_IDS)
async def test_a_correction_for_an_impossible_answer_id_is_not_found(bot: TeamsBot, answer_id: Any) -> None:
    data = {"action": "suggestCorrection", "answer_id": answer_id, "correction": "Something better."}
    response = await bot.send(card_execute("1718999999999", data, service_url=bot.service_url))
    assert response.status_code == 200
    assert response.json() == cards.card_error(cards.MISSING_ANSWER)
    response = await bot.send(card_submit("1718999999999", data, service_url=bot.service_url))
    assert response.status_code == 200
    await bot.settled()
    assert bot.connector.messages()[-1].activity["text"] == cards.MISSING_ANSWER
    assert stored(bot) == (0, 0, 0)


@pytest.mark.parametrize("text", [{"x": 1}, ["30 days"], 30])
async def test_a_correction_whose_text_is_not_text_is_refused(bot: TeamsBot, text: Any) -> None:
    reply = await bot.ask()
    before = stored(bot)
    form = [
        a for a in reply.activity["attachments"][0]["content"]["actions"] if a["type"] == "Action.ShowCard"
    ]
    data = form[0]["card"]["actions"][0]["data"] | {"correction": text}
    response = await bot.send(card_execute(reply.id, data, service_url=bot.service_url))
    assert response.json() == cards.card_error(cards.BAD_SUBMISSION)
    await bot.send(card_submit(reply.id, data, service_url=bot.service_url))
    await bot.settled()
    assert bot.connector.messages()[-1].activity["text"] == cards.BAD_SUBMISSION
    assert stored(bot) == before
