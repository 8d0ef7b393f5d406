"""Votes and corrections from Slack, end to end: reactions and feedback-button clicks signed and sent
over HTTP to the real bot app, recorded in a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.slack import blocks
from bot.slack.blocks import CORRECTION_THANKS, STALE_MODAL
from bot.slack.notify import NOT_OPENED
from feedback import queries
from feedback.models import Correction
from tests.support.common import eventually
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import block_actions, mention, reaction_event, view_submission

QUESTION = "<@U0BOT> how many days of leave do I get?"
ANSWER = "You get 27 days of leave a year."


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path) as running:
        yield running


async def ask(bot: Bot, channel: str = "C1") -> tuple[int, dict]:
    """Mention the bot; the answer's id and its message as Slack stores it."""
    question = bot.slack.add_message(channel, "U1", QUESTION)
    await bot.send_event(mention(question, channel))
    await bot.slack.wait_for_replies(channel=channel)
    await bot.settled()
    posted = bot.slack.messages[channel][-1]
    return posted["metadata"]["event_payload"]["answer_id"], posted


def votes(bot: Bot, answer_id: int) -> list[tuple[str, int, str]]:
    with bot.database.reader() as session:
        return [(v.user_id, v.value, v.source) for v in queries.votes_for(session, answer_id)]


def corrections(bot: Bot) -> list[Correction]:
    with bot.database.reader() as session:
        return list(session.exec(select(Correction)))


async def until_votes(bot: Bot, answer_id: int, expected: list[tuple[str, int, str]]) -> None:
    async def check() -> bool:
        return votes(bot, answer_id) == expected

    await eventually(check)


async def test_thumbs_up_reaction_is_a_vote_and_removing_it_withdraws_it(bot: Bot) -> None:
    answer_id, posted = await ask(bot)
    where = {"user": "U2", "channel": "C1", "ts": posted["ts"]}
    await bot.send_event(reaction_event("reaction_added", "+1", **where))
    await until_votes(bot, answer_id, [("U2", 1, "reaction")])
    await bot.send_event(reaction_event("reaction_removed", "+1", **where))
    await until_votes(bot, answer_id, [])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("+1::skin-tone-3", 1),
        ("thumbsup", 1),
        ("thumbsup::skin-tone-6", 1),
        ("-1::skin-tone-2", -1),
        ("thumbsdown", -1),
    ],
)
async def test_skin_tones_and_aliases_count(bot: Bot, name: str, value: int) -> None:
    answer_id, posted = await ask(bot)
    await bot.send_event(reaction_event("reaction_added", name, user="U2", channel="C1", ts=posted["ts"]))
    await until_votes(bot, answer_id, [("U2", value, "reaction")])


async def test_one_vote_per_person_the_latest_counts(bot: Bot) -> None:
    answer_id, posted = await ask(bot)
    where = {"user": "U2", "channel": "C1", "ts": posted["ts"]}
    await bot.send_event(reaction_event("reaction_added", "+1", **where))
    await until_votes(bot, answer_id, [("U2", 1, "reaction")])
    await bot.send_event(reaction_event("reaction_added", "-1", **where))
    await until_votes(bot, answer_id, [("U2", -1, "reaction")])
    # Taking back the earlier 👍 leaves the later 👎 standing.
    await bot.send_event(reaction_event("reaction_removed", "+1", **where))
    await bot.send_event(reaction_event("reaction_added", "+1", user="U3", channel="C1", ts=posted["ts"]))
    await until_votes(bot, answer_id, [("U2", -1, "reaction"), ("U3", 1, "reaction")])


async def test_thumbs_down_reaction_invites_a_correction(bot: Bot) -> None:
    answer_id, posted = await ask(bot)
    await bot.send_event(reaction_event("reaction_added", "-1", user="U2", channel="C1", ts=posted["ts"]))
    [invite] = await bot.slack.wait_for("chat.postEphemeral")
    assert (invite["channel"], invite["user"], invite["thread_ts"]) == ("C1", "U2", posted["thread_ts"])
    [button] = invite["blocks"][1]["elements"]
    assert (button["action_id"], button["value"]) == ("suggest_correction", str(answer_id))


async def test_other_reactions_and_reactions_on_other_messages_are_not_votes(bot: Bot) -> None:
    answer_id, posted = await ask(bot)
    question_ts = bot.slack.messages["C1"][0]["ts"]
    await bot.send_event(reaction_event("reaction_added", "tada", user="U2", channel="C1", ts=posted["ts"]))
    await bot.send_event(
        reaction_event("reaction_added", "+1", user="U2", channel="C1", ts=question_ts, item_user="U1")
    )
    await bot.settled()
    await bot.send_event(reaction_event("reaction_added", "-1", user="U3", channel="C1", ts=posted["ts"]))
    await until_votes(bot, answer_id, [("U3", -1, "reaction")])


async def test_retried_reaction_is_counted_once(bot: Bot) -> None:
    answer_id, posted = await ask(bot)
    event = reaction_event("reaction_added", "-1", user="U2", channel="C1", ts=posted["ts"])
    _, event_id = await bot.send_event(event)
    await bot.send_event(event, event_id=event_id, retry=1)
    await bot.slack.wait_for("chat.postEphemeral")
    await bot.settled()
    assert len(bot.slack.called("chat.postEphemeral")) == 1
    assert votes(bot, answer_id) == [("U2", -1, "reaction")]


async def test_feedback_buttons_are_votes(bot: Bot) -> None:
    answer_id, posted = await ask(bot)
    feedback = posted["blocks"][-1]["elements"][0]

    def click(button: str) -> dict:
        action = {
            "type": "feedback_buttons",
            "action_id": feedback["action_id"],
            "block_id": "fb",
            "value": feedback[button]["value"],
        }
        return block_actions(user="U2", channel="C1", message=posted, action=action)

    response = await bot.send_interaction(click("negative_button"))
    assert response.status_code == 200
    await until_votes(bot, answer_id, [("U2", -1, "button")])
    [invite] = await bot.slack.wait_for("chat.postEphemeral")
    assert invite["user"] == "U2" and invite["blocks"][1]["elements"][0]["value"] == str(answer_id)

    await bot.send_interaction(click("positive_button"))
    await until_votes(bot, answer_id, [("U2", 1, "button")])
    await bot.settled()
    assert len(bot.slack.called("chat.postEphemeral")) == 1  # only the 👎 invites


async def open_correction(bot: Bot) -> tuple[int, dict, dict]:
    answer_id, posted = await ask(bot)
    button = posted["blocks"][-2]["elements"][0]
    action = {"type": "button", "action_id": button["action_id"], "block_id": "c", "value": button["value"]}
    payload = block_actions(user="U2", channel="C1", message=posted, action=action)
    response = await bot.send_interaction(payload)
    assert response.status_code == 200
    [opened] = await bot.slack.wait_for("views.open")
    assert opened["trigger_id"] == payload["trigger_id"]
    return answer_id, posted, opened["view"]


async def test_correction_modal_stores_a_pending_correction_and_thanks(bot: Bot) -> None:
    answer_id, posted, view = await open_correction(bot)
    assert view["blocks"][0]["element"]["initial_value"] == ANSWER  # pre-filled with the bot's answer

    submitted = view_submission(user="U2", view=view, text="  You get 30 days a year since 2025.  ")
    response = await bot.send_interaction(submitted)
    assert response.status_code == 200 and response.content in (b"", b"{}")  # the modal closes

    [thanks] = await bot.slack.wait_for("chat.postEphemeral")
    assert (thanks["channel"], thanks["user"], thanks["thread_ts"]) == ("C1", "U2", posted["thread_ts"])
    assert thanks["text"] == CORRECTION_THANKS
    [correction] = corrections(bot)
    assert (correction.answer_id, correction.author, correction.text, correction.status) == (
        answer_id,
        "U2",
        "You get 30 days a year since 2025.",
        "pending",
    )


@pytest.mark.parametrize("text", [None, "   \n ", ANSWER])
async def test_empty_or_untouched_correction_is_refused_in_the_modal(bot: Bot, text: str | None) -> None:
    _, _, view = await open_correction(bot)
    response = await bot.send_interaction(view_submission(user="U2", view=view, text=text))
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["response_action"] == "errors" and set(body["errors"]) == {"correction"}
    await bot.settled()
    assert corrections(bot) == []
    assert bot.slack.called("chat.postEphemeral") == []


@pytest.mark.parametrize("metadata", ["not json", "{}", '{"answer_id": "abc"}', '{"answer_id": true}', "[7]"])
async def test_a_modal_whose_metadata_names_no_answer_is_refused_in_the_modal(
    bot: Bot, metadata: str
) -> None:
    """Issue #21, point 6: these answered 500; the person now reads why under the text box."""
    _, _, view = await open_correction(bot)
    mangled = {**view, "private_metadata": metadata}
    response = await bot.send_interaction(view_submission(user="U2", view=mangled, text="You get 30 days."))
    assert response.status_code == 200
    assert json.loads(response.content) == {
        "response_action": "errors",
        "errors": {"correction": STALE_MODAL},
    }
    await bot.settled()
    assert corrections(bot) == []
    assert bot.slack.called("chat.postEphemeral") == []


async def test_a_correction_that_cannot_be_stored_is_not_silent(bot: Bot) -> None:
    """An answer id past SQL's integers (issue #21): acked, so the person is told in the thread."""
    view = blocks.correction_modal(answer_id=2**63, answer_text="x", channel="C1", thread_ts="1.0")
    response = await bot.send_interaction(view_submission(user="U2", view=view, text="You get 30 days."))
    assert response.status_code == 200
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert (note["user"], note["channel"], note["thread_ts"]) == ("U2", "C1", "1.0")
    assert note["text"] != CORRECTION_THANKS and "Traceback" not in note["text"]
    await bot.settled()
    assert corrections(bot) == []


async def test_a_modal_slack_does_not_open_tells_the_person_to_click_again(bot: Bot) -> None:
    """Slack refuses views.open once the click's trigger has expired (here: a click without one)."""
    answer_id, posted = await ask(bot)
    action = {"type": "button", "action_id": "suggest_correction", "block_id": "c", "value": str(answer_id)}
    click = {**block_actions(user="U2", channel="C1", message=posted, action=action), "trigger_id": ""}
    assert (await bot.send_interaction(click)).status_code == 200
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert (note["user"], note["channel"], note["text"]) == ("U2", "C1", NOT_OPENED)


async def test_correcting_an_answer_that_is_gone_says_so(bot: Bot) -> None:
    _, posted = await ask(bot)
    action = {"type": "button", "action_id": "suggest_correction", "block_id": "c", "value": "999"}
    await bot.send_interaction(block_actions(user="U2", channel="C1", message=posted, action=action))
    [note] = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == "U2" and "can't find that answer" in note["text"]
    assert bot.slack.called("views.open") == []
