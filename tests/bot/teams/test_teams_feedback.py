"""Votes and corrections from Teams, end to end: feedback clicks, reactions and card actions in
Teams' shapes over HTTP to the real bot, recorded in a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.teams import cards
from feedback import queries
from feedback.models import Answer, Correction
from tests.support.teams_activities import (
    ADA,
    GRACE,
    card_execute,
    card_submit,
    channel_thread,
    feedback_invoke,
    reaction,
)
from tests.support.teams_harness import TeamsBot, running_teams_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[TeamsBot]:
    async with running_teams_bot(tmp_path) as running:
        yield running


def votes(bot: TeamsBot, answer_id: int) -> list[tuple[str, int, str, str | None]]:
    with bot.database.reader() as session:
        return [(v.user_id, v.value, v.source, v.comment) for v in queries.votes_for(session, answer_id)]


def corrections(bot: TeamsBot) -> list[tuple[int, str, str, str]]:
    with bot.database.reader() as session:
        return [(c.answer_id, c.author, c.text, c.status) for c in session.exec(select(Correction))]


def answer_id_of(bot: TeamsBot, reply_id: str) -> int:
    """The recorded answer shown as message `reply_id`."""
    with bot.database.reader() as session:
        [answer] = session.exec(select(Answer).where(Answer.reply_ref == reply_id))
    assert answer.id is not None
    return answer.id


async def test_like_is_a_vote_with_its_comment_and_the_invoke_gets_an_empty_object(bot: TeamsBot) -> None:
    reply = await bot.ask()
    answer_id = answer_id_of(bot, reply.id)
    response = await bot.send(feedback_invoke(reply.id, "like", service_url=bot.service_url, text="spot on"))
    assert response.status_code == 200
    assert response.json() == {}
    assert votes(bot, answer_id) == [(ADA.aad_id, 1, "teams_feedback", "spot on")]
    assert corrections(bot) == []


async def test_dislike_with_text_is_a_vote_and_a_pending_correction(bot: TeamsBot) -> None:
    reply = await bot.ask()
    answer_id = answer_id_of(bot, reply.id)
    text = "It is 30 days since the 2025 policy."
    response = await bot.send(feedback_invoke(reply.id, "dislike", service_url=bot.service_url, text=text))
    assert (response.status_code, response.json()) == (200, {})
    assert votes(bot, answer_id) == [(ADA.aad_id, -1, "teams_feedback", text)]
    assert corrections(bot) == [(answer_id, ADA.aad_id, text, "pending")]


async def test_dislike_without_text_is_only_a_vote_and_a_later_like_replaces_it(bot: TeamsBot) -> None:
    reply = await bot.ask()
    answer_id = answer_id_of(bot, reply.id)
    await bot.send(feedback_invoke(reply.id, "dislike", service_url=bot.service_url))
    assert votes(bot, answer_id) == [(ADA.aad_id, -1, "teams_feedback", None)]
    await bot.send(feedback_invoke(reply.id, "like", service_url=bot.service_url))
    assert votes(bot, answer_id) == [(ADA.aad_id, 1, "teams_feedback", None)]
    assert corrections(bot) == []


async def test_a_retried_feedback_invoke_stores_one_correction(bot: TeamsBot) -> None:
    reply = await bot.ask()
    click = feedback_invoke(reply.id, "dislike", service_url=bot.service_url, text="It is 30 days.")
    first, retry = await bot.send(click), await bot.send(click)
    assert (first.json(), retry.json()) == ({}, {})
    assert len(corrections(bot)) == 1


async def test_feedback_on_a_message_that_is_not_an_answer_is_acknowledged_and_ignored(bot: TeamsBot) -> None:
    response = await bot.send(feedback_invoke("1718999999999", "like", service_url=bot.service_url))
    assert (response.status_code, response.json()) == (200, {})
    with bot.database.reader() as session:
        assert queries.vote_count(session) == 0


async def test_thumbs_up_reaction_is_a_vote_and_removing_it_withdraws_it(bot: TeamsBot) -> None:
    reply = await bot.ask()
    answer_id = answer_id_of(bot, reply.id)
    added = await bot.send(reaction(reply.id, service_url=bot.service_url, added=["like"]))
    assert added.status_code == 200
    assert votes(bot, answer_id) == [(GRACE.aad_id, 1, "reaction", None)]
    await bot.send(reaction(reply.id, service_url=bot.service_url, removed=["like"]))
    assert votes(bot, answer_id) == []


async def test_other_reactions_are_not_votes(bot: TeamsBot) -> None:
    reply = await bot.ask()
    answer_id = answer_id_of(bot, reply.id)
    await bot.send(reaction(reply.id, service_url=bot.service_url, added=["heart", "laugh"]))
    assert votes(bot, answer_id) == []


async def test_reaction_in_a_channel_thread_finds_the_answer(bot: TeamsBot) -> None:
    thread = channel_thread("1718000000555")
    reply = await bot.ask("how many days of leave?", conversation=thread, mention=True)
    answer_id = answer_id_of(bot, reply.id)
    await bot.send(reaction(reply.id, service_url=bot.service_url, added=["like"], conversation=thread))
    assert votes(bot, answer_id) == [(GRACE.aad_id, 1, "reaction", None)]


async def test_removing_a_reaction_leaves_a_feedback_vote_alone(bot: TeamsBot) -> None:
    reply = await bot.ask()
    answer_id = answer_id_of(bot, reply.id)
    await bot.send(feedback_invoke(reply.id, "like", service_url=bot.service_url, user=GRACE))
    await bot.send(reaction(reply.id, service_url=bot.service_url, removed=["like"]))
    assert votes(bot, answer_id) == [(GRACE.aad_id, 1, "teams_feedback", None)]


# --- the "Suggest a correction" card ----------------------------------------------------------


def correction_form(reply_activity: dict) -> dict:
    show = reply_activity["attachments"][0]["content"]["actions"][0]
    return show["card"]


async def test_the_correction_form_holds_the_answer_and_an_execute_with_a_submit_fallback(
    bot: TeamsBot,
) -> None:
    reply = await bot.ask()
    form = correction_form(reply.activity)
    [field] = form["body"]
    assert field["type"] == "Input.Text" and field["value"] == "You get 27 days of leave a year."
    [send] = form["actions"]
    assert send["type"] == "Action.Execute" and send["verb"] == "suggestCorrection"
    assert send["fallback"]["type"] == "Action.Submit"
    assert send["fallback"]["data"] == send["data"]


async def test_execute_stores_a_pending_correction_and_thanks_in_the_invoke_response(bot: TeamsBot) -> None:
    reply = await bot.ask()
    data = correction_form(reply.activity)["actions"][0]["data"] | {"correction": "You get 30 days a year."}
    response = await bot.send(card_execute(reply.id, data, service_url=bot.service_url))
    assert response.status_code == 200
    assert response.json() == cards.card_message(cards.CORRECTION_THANKS)
    assert corrections(bot) == [(data["answer_id"], ADA.aad_id, "You get 30 days a year.", "pending")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", cards.CORRECTION_EMPTY), ("  You get 27 days of leave\n a year. ", cards.CORRECTION_UNCHANGED)],
)
async def test_execute_with_nothing_new_is_refused_and_stores_nothing(
    bot: TeamsBot, text: str, problem: str
) -> None:
    reply = await bot.ask()
    data = correction_form(reply.activity)["actions"][0]["data"] | {"correction": text}
    response = await bot.send(card_execute(reply.id, data, service_url=bot.service_url))
    assert response.status_code == 200
    assert response.json() == cards.card_error(problem)
    assert corrections(bot) == []


async def test_execute_for_an_unknown_answer_says_so(bot: TeamsBot) -> None:
    data = {"action": "suggestCorrection", "answer_id": 999, "correction": "Something better."}
    response = await bot.send(card_execute("1718999999999", data, service_url=bot.service_url))
    assert response.json() == cards.card_error(cards.MISSING_ANSWER)
    assert corrections(bot) == []


async def test_submit_fallback_stores_the_correction_and_replies(bot: TeamsBot) -> None:
    reply = await bot.ask()
    data = correction_form(reply.activity)["actions"][0]["fallback"]["data"] | {"correction": "30 days."}
    response = await bot.send(card_submit(reply.id, data, service_url=bot.service_url))
    assert response.status_code == 200
    thanks = bot.connector.messages()[-1]
    assert thanks.activity["text"] == cards.CORRECTION_THANKS
    assert corrections(bot) == [(data["answer_id"], ADA.aad_id, "30 days.", "pending")]
    assert len(bot.model.requests) == 1  # the submit was not taken for a question


async def test_submit_fallback_with_empty_text_asks_for_one(bot: TeamsBot) -> None:
    reply = await bot.ask()
    data = correction_form(reply.activity)["actions"][0]["fallback"]["data"] | {"correction": " "}
    await bot.send(card_submit(reply.id, data, service_url=bot.service_url))
    assert bot.connector.messages()[-1].activity["text"] == cards.CORRECTION_EMPTY
    assert corrections(bot) == []
