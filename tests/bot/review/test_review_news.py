"""Who is told about a review decision taken away from the Slack card, over the real protocols: the
console updates the Slack card and DMs a Slack author (a local Slack Web API server), and a Teams
author hears of a decision wherever it was taken – the console, a Slack card, `chatbot review` – as
a proactive message in the chat they suggested it from (a local Bot Framework connector). Telling
people never undoes or blocks the decision: with Slack or Teams down it is recorded and said so."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botbuilder.schema import Activity
from click.testing import CliRunner
from sqlmodel import select

from bot.console.core import CONSOLE
from bot.pipeline import Pipeline
from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.review.news import together
from bot.slack import Deps
from bot.slack.app import web_client as async_web_client
from bot.slack.listeners.review import post_missing_cards
from bot.slack.review_blocks import REJECT_ACTION
from bot.slack.review_notify import slack_news, web_client
from bot.teams import replies
from bot.teams.review_notify import teams_news
from chatbot import wiring
from chatbot.bot_process import application
from chatbot.cli import main
from chatbot.settings import Settings
from feedback import queries, store
from feedback.db import Database
from feedback.models import Correction
from tests.support.common import serving
from tests.support.console import TOKEN, Console, running_console
from tests.support.fakes import FakeModel
from tests.support.slack_api import BOT_TOKEN, SIGNING_SECRET, SlackServer
from tests.support.slack_harness import Bot, make_deps, running_bot
from tests.support.slack_payloads import block_actions, view_submission
from tests.support.teams_activities import PERSONAL, card_execute, feedback_invoke, message
from tests.support.teams_harness import TeamsBot, running_teams_bot

REVIEW = "CREVIEW"
AUTHOR = "U2"
QUESTION = "How many days of leave do I get?"
FIX = "You get 30 days a year since 2025."
APPROVED = (
    f"Good news: a reviewer approved your correction to my answer to “{QUESTION}”. "
    "I already use it when someone asks this. Thank you for teaching me!"
)
NOBODY_LISTENS = "http://127.0.0.1:9/"


# --- the console tells Slack ------------------------------------------------------------------


async def slack_correction(database: Database, slack: SlackServer) -> int:
    """A correction suggested in Slack by AUTHOR, its review card posted to REVIEW by the bot."""
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id=AUTHOR, text=QUESTION, channel="C1")
        a = store.record_answer(s, question_id=q.id or 0, text="You get 27 days.", adapter="base")
        correction = store.submit_correction(s, answer_id=a.id or 0, author=AUTHOR, text=FIX)
    client = async_web_client(bot_token=BOT_TOKEN, api_url=slack.api_url)
    card = await client.chat_postMessage(channel=REVIEW, text=f"Correction #{correction.id} to review")
    with database.writer() as s:
        store.attach_review_card(s, correction_id=correction.id or 0, channel=REVIEW, ref=str(card["ts"]))
    return correction.id or 0


async def decide_in_console(c: Console, correction_id: int, decision: str, **form: str) -> str:
    """Sign in, decide, follow the redirect; the review page shown after it."""
    await c.login()
    csrf = await c.csrf("/console/review")
    response = await c.http.post(f"/console/review/{correction_id}/{decision}", data={"csrf": csrf, **form})
    assert response.status_code == 303, response.text
    return (await c.http.get(response.headers["Location"])).text


def status(database: Database, correction_id: int) -> str:
    with database.reader() as s:
        case = queries.review_case(s, correction_id)
    assert case is not None
    return case.correction.status


async def test_a_console_approval_updates_the_slack_card_and_dms_the_author(
    database: Database, tmp_path: Path
) -> None:
    async with SlackServer() as slack:
        correction_id = await slack_correction(database, slack)
        told = slack_news(web_client(bot_token=BOT_TOKEN, api_url=slack.api_url), approvals_required=1)
        async with running_console(database, tmp_path, on_decided=together(told)) as c:
            page = await decide_in_console(c, correction_id, "approve")
        assert f"Correction #{correction_id} approved." in page and 'data-testid="review-warning"' not in page
        [update] = slack.called("chat.update")
        assert (update["channel"], update["ts"]) == (REVIEW, slack.messages[REVIEW][0]["ts"])
        assert "*Approved* by console:admin" in str(update["blocks"])
        assert slack.messages[REVIEW][0]["blocks"] == update["blocks"]  # the card itself changed
        [opened] = slack.called("conversations.open")
        assert opened["users"] == AUTHOR
        [dm] = slack.called("chat.postMessage", channel=f"D{AUTHOR}")
        assert dm["text"] == APPROVED


async def test_with_slack_down_a_console_decision_is_recorded_and_the_reviewer_warned(
    database: Database, tmp_path: Path
) -> None:
    async with SlackServer() as slack:
        correction_id = await slack_correction(database, slack)
    told = slack_news(web_client(bot_token=BOT_TOKEN, api_url=f"{NOBODY_LISTENS}api/"), approvals_required=1)
    async with running_console(database, tmp_path, on_decided=told) as c:
        page = await decide_in_console(c, correction_id, "reject", reason="It is 27 days.")
    assert f"Correction #{correction_id} rejected" in page
    assert (
        'data-testid="review-warning">The decision is recorded, but Slack was not told '
        "(Slack could not be reached).<" in page
    )
    assert status(database, correction_id) == "rejected"


async def test_the_bot_wires_its_console_to_tell_slack(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chatbot.bot_process.application`, built from settings: a console decision reaches the Slack card."""

    def build_pipeline(settings: Settings, *, database: Database, knowledge: object = None) -> Pipeline:
        return make_deps(database, FakeModel()).pipeline

    monkeypatch.setattr(wiring, "build_pipeline", build_pipeline)
    async with SlackServer() as slack:
        correction_id = await slack_correction(database, slack)
        settings = Settings(
            database_url=database.url,
            data_dir=tmp_path / "data",
            embedding_model="hashing",
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
            admin_token=TOKEN,
        )
        app = await application(settings)
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
            c = Console(http, app[CONSOLE].deps, FakeModel(), database, knowledge=None)  # only signs in
            page = await decide_in_console(c, correction_id, "approve")
        assert f"Correction #{correction_id} approved." in page and "review-warning" not in page
        assert len(slack.called("chat.update", channel=REVIEW)) == 1
        [dm] = slack.called("chat.postMessage", channel=f"D{AUTHOR}")
        assert dm["text"].startswith("Good news: a reviewer approved your correction")


# --- Teams authors are told -------------------------------------------------------------------


async def suggest_in_teams(teams: TeamsBot, text: str = FIX) -> tuple[int, str]:
    """Ask in the personal chat and send a correction from the answer's card; the correction's id
    and the id of the activity that sent it."""
    reply = await teams.ask(QUESTION)
    form = reply.activity["attachments"][0]["content"]["actions"][0]["card"]
    data = form["actions"][0]["data"] | {"correction": text}
    activity = card_execute(reply.id, data, service_url=teams.service_url)
    assert (await teams.send(activity)).status_code == 200
    with teams.database.reader() as s:
        correction = s.exec(select(Correction)).all()[-1]
    return correction.id or 0, activity["id"]


async def test_a_teams_author_hears_of_a_console_approval_in_their_chat(
    database: Database, tmp_path: Path
) -> None:
    async with running_teams_bot(tmp_path, database=database) as teams:
        correction_id, suggestion = await suggest_in_teams(teams)
        with database.reader() as s:
            kept = s.get(Correction, correction_id)
        assert kept is not None and kept.author_conversation is not None
        assert kept.author_conversation["serviceUrl"] == teams.service_url
        before = len(teams.connector.messages())
        told = together(teams_news(teams.adapter, app_id=""))
        async with running_console(database, tmp_path, on_decided=told) as c:
            page = await decide_in_console(c, correction_id, "approve")
        assert f"Correction #{correction_id} approved." in page and "review-warning" not in page
        await teams.connector.wait_for(lambda: len(teams.connector.messages()) > before)
        [note] = teams.connector.messages()[before:]
        assert (note.conversation, note.reply_to) == (PERSONAL, suggestion)
        assert note.activity["text"] == APPROVED
        assert note.activity["recipient"]["id"] == kept.author_conversation["user"]["id"]


async def test_a_stored_chat_whose_service_url_is_not_bot_framework_is_never_sent_to(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reference stored before replies were restricted may name any address: it is not used."""
    async with running_teams_bot(tmp_path, database=database) as teams:
        correction_id, _ = await suggest_in_teams(teams)
        with database.writer() as s:
            kept = s.get(Correction, correction_id)
            assert kept is not None and kept.author_conversation is not None
            kept.author_conversation = kept.author_conversation | {"serviceUrl": "https://attacker.example/"}
            s.add(kept)
            s.commit()
        before = len(teams.connector.received)
        told = teams_news(teams.adapter, app_id="")
        async with running_console(database, tmp_path, on_decided=told) as c:
            page = await decide_in_console(c, correction_id, "approve")
        assert f"Correction #{correction_id} approved." in page
        await asyncio.sleep(0.3)  # the author is told after the page is answered
        assert teams.connector.received[before:] == []
        assert "not a Bot Framework serviceUrl" in caplog.text
        assert status(database, correction_id) == "approved"


async def test_a_console_approval_that_waits_for_more_reviewers_tells_the_teams_author_nothing(
    database: Database, tmp_path: Path
) -> None:
    async with running_teams_bot(tmp_path, database=database) as teams:
        correction_id, _ = await suggest_in_teams(teams)
        before = len(teams.connector.received)
        told = teams_news(teams.adapter, app_id="")
        async with running_console(database, tmp_path, approvals_required=2, on_decided=told) as c:
            page = await decide_in_console(c, correction_id, "approve")
        assert "waits for more reviewers" in page
        await asyncio.sleep(0.2)
        assert teams.connector.received[before:] == []
        assert status(database, correction_id) == "pending"


def reviewing(deps: Deps) -> None:
    deps.review = ReviewDesk(deps.records.database, ReviewPolicy.of(reviewers=["R1"]))
    deps.review_channel = REVIEW


async def reject_on_the_card(bot: Bot, reason: str) -> None:
    """R1 clicks Reject on the latest review card and gives `reason`."""
    card = bot.slack.messages[REVIEW][-1]
    button = next(e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"])
    action = {"type": "button", "action_id": REJECT_ACTION, "block_id": "r", "value": button["value"]}
    await bot.send_interaction(block_actions(user="R1", channel=REVIEW, message=card, action=action))
    [opened] = await bot.slack.wait_for("views.open")
    await bot.send_interaction(view_submission(user="R1", view=opened["view"], text=reason))
    await bot.settled()


async def test_a_teams_author_hears_of_a_rejection_on_a_slack_card_with_the_reason(tmp_path: Path) -> None:
    reason = "The handbook says 27 days; 30 is the senior allowance."
    async with (
        running_bot(tmp_path, configure=reviewing) as bot,
        running_teams_bot(tmp_path, database=bot.database) as teams,
    ):
        bot.deps.tell_elsewhere = teams_news(teams.adapter, app_id="")
        reply = await teams.ask(QUESTION)
        dislike = feedback_invoke(reply.id, "dislike", service_url=teams.service_url, text=FIX)
        assert (await teams.send(dislike)).status_code == 200  # a 👎 with a comment is a correction
        client = async_web_client(bot_token=BOT_TOKEN, api_url=bot.slack.api_url)
        assert await post_missing_cards(bot.deps, client, older_than=timedelta(0)) == 1
        before = len(teams.connector.messages())

        await reject_on_the_card(bot, reason)
        await teams.connector.wait_for(lambda: len(teams.connector.messages()) > before)
        [note] = teams.connector.messages()[before:]
        assert (note.conversation, note.reply_to) == (PERSONAL, dislike["id"])
        text = note.activity["text"]
        assert text.startswith(f"Thanks for suggesting a correction to my answer to “{QUESTION}”.")
        assert f"and said:\n\n“{reason}”\n\nIf you think they missed something" in text
        assert bot.slack.called("conversations.open") == []  # no Slack DM for a Teams author
        assert "Rejected" in str(bot.slack.messages[REVIEW][-1]["blocks"])


# --- `chatbot review` tells Teams authors too -----------------------------------------------------


def review_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    for name in ("SLACK_BOT_TOKEN", "MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_MODEL": "hashing",
        "REVIEWERS": "R1",
    }.items():
        monkeypatch.setenv(name, value)


async def test_a_teams_author_hears_of_a_decision_taken_in_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_teams_bot(tmp_path) as teams:
        correction_id, suggestion = await suggest_in_teams(teams)
        before = len(teams.connector.messages())
        review_env(monkeypatch, tmp_path, teams.database.url)
        args = ["review", "--approve", str(correction_id), "--as", "R1"]
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == 0, result.output
        assert "was not told" not in result.output
        await teams.connector.wait_for(lambda: len(teams.connector.messages()) > before)
        [note] = teams.connector.messages()[before:]
        assert (note.conversation, note.reply_to) == (PERSONAL, suggestion)
        assert note.activity["text"] == APPROVED
        assert status(teams.database, correction_id) == "approved"


def test_teams_unreachable_from_the_terminal_still_records_the_decision(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: dict[str, Any] = message(QUESTION, service_url=NOBODY_LISTENS)
    with database.writer() as s:
        q = store.record_question(s, platform="teams", user_id="ada", text=QUESTION, channel=PERSONAL)
        a = store.record_answer(s, question_id=q.id or 0, text="You get 27 days.", adapter="base")
        reference = replies.reference_of(Activity().deserialize(asked))
        c = store.submit_correction(
            s, answer_id=a.id or 0, author="ada", text=FIX, author_conversation=reference
        )
    review_env(monkeypatch, tmp_path, database.url)
    result = CliRunner().invoke(main, ["review", "--reject", str(c.id), "--reason", "No.", "--as", "R1"])
    assert result.exit_code == 0, result.output
    assert "its author was not told in Teams (Teams could not be reached)" in result.output
    assert status(database, c.id or 0) == "rejected"
