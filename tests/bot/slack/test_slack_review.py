"""The review queue over Slack's protocol: a correction submitted in the modal is posted as a card to
the review channel; reviewers approve, edit or reject it with signed button clicks and modal
submissions sent to the real Bolt app; the card is updated with chat.update, the author gets a DM;
anyone else is refused and nothing changes. Ends with correction recall: ask, correct, approve,
ask again in other words, and the answer cites the reviewed correction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import select

from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.slack import Deps
from bot.slack.app import web_client
from bot.slack.listeners.review import post_missing_cards
from bot.slack.review_blocks import APPROVE_ACTION, DRAFT_ACTION, EDIT_ACTION, REJECT_ACTION, STALE_MODAL
from chatbot.cli import main
from feedback import queries, store
from feedback.db import Database
from feedback.models import Correction, Review
from tests.support.slack_api import BOT_TOKEN
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import block_actions, mention, view_submission

REVIEW = "CREVIEW"
AUTHOR = "U2"
FIX = "You get 30 days a year since 2025."


def reviewing(
    *reviewers: str, k: int = 1, channel: str = REVIEW, knowledge: KnowledgeBase | None = None
) -> Callable[[Deps], None]:
    def configure(deps: Deps) -> None:
        policy = ReviewPolicy.of(reviewers=reviewers, approvals_required=k)
        deps.review = ReviewDesk(deps.records.database, policy, knowledge=knowledge)
        deps.review_channel = channel
        if knowledge is not None:
            deps.pipeline.retriever = knowledge

    return configure


@asynccontextmanager
async def bot_with(tmp_path: Path, configure: Callable[[Deps], None]) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path, configure=configure) as bot:
        yield bot


async def ask(bot: Bot, text: str = "how many days of leave do I get?") -> dict[str, Any]:
    question = bot.slack.add_message("C1", "U1", f"<@U0BOT> {text}")
    before = len([r for r in bot.slack.replies if r["channel"] == "C1"])
    await bot.send_event(mention(question, "C1"))
    await bot.slack.wait_for_replies(count=before + 1, channel="C1")
    await bot.settled()
    return bot.slack.messages["C1"][-1]


async def correct(bot: Bot, answer: dict[str, Any], text: str = FIX) -> None:
    """AUTHOR clicks "Suggest a correction" under `answer` and submits `text`."""
    button = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"][0]
    action = {"type": "button", "action_id": button["action_id"], "block_id": "c", "value": button["value"]}
    opened = len(bot.slack.called("views.open"))
    await bot.send_interaction(block_actions(user=AUTHOR, channel="C1", message=answer, action=action))
    view = (await bot.slack.wait_for("views.open", count=opened + 1))[-1]["view"]
    await bot.send_interaction(view_submission(user=AUTHOR, view=view, text=text))
    await bot.settled()


def card(bot: Bot) -> dict[str, Any]:
    return bot.slack.messages[REVIEW][-1]


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    return {e["action_id"]: e for b in actions for e in b["elements"]}


def card_text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


async def click(bot: Bot, user: str, action_id: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
    message = message or card(bot)
    button = buttons(message)[action_id]
    action = {"type": "button", "action_id": action_id, "block_id": "r", "value": button["value"]}
    payload = block_actions(user=user, channel=REVIEW, message=message, action=action)
    response = await bot.send_interaction(payload)
    assert response.status_code == 200
    await bot.settled()
    return payload


def correction(bot: Bot) -> Correction:
    with bot.database.reader() as session:
        return session.exec(select(Correction)).one()


def reviews(bot: Bot) -> list[tuple[str, str, str | None]]:
    with bot.database.reader() as session:
        return [(r.reviewer, r.decision, r.reason) for r in session.exec(select(Review))]


async def test_a_correction_is_posted_to_the_review_channel_as_a_card(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        [posted] = bot.slack.called("chat.postMessage", channel=REVIEW)
        text = card_text(posted)
        assert "how many days of leave do I get?" in text  # the question
        assert "You get 27 days of leave a year." in text  # the bot's answer
        assert "Annual Leave &gt; Allowance" in text  # its sources (escaped for mrkdwn)
        assert FIX in text and f"<@{AUTHOR}>" in text  # the proposal and who made it
        assert set(buttons(posted)) == {APPROVE_ACTION, EDIT_ACTION, REJECT_ACTION}
        row = correction(bot)
        assert (row.card_channel, row.card_ref) == (REVIEW, card(bot)["ts"])


async def test_no_review_channel_means_no_card_but_the_correction_is_kept(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1", channel="")) as bot:
        await correct(bot, await ask(bot))
        assert [m["channel"] for m in bot.slack.replies] == ["C1"]
        assert correction(bot).status == "pending"


async def test_a_reviewer_approves_the_card_updates_and_the_author_is_told(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        await click(bot, "R1", APPROVE_ACTION)
        assert correction(bot).status == "approved" and reviews(bot) == [("R1", "approve", None)]

        [update] = bot.slack.called("chat.update")
        assert (update["channel"], update["ts"]) == (REVIEW, card(bot)["ts"])
        assert "Approved" in card_text(card(bot)) and buttons(card(bot)) == {}  # decided: no buttons
        [opened] = bot.slack.called("conversations.open")
        assert opened["users"] == AUTHOR
        [dm] = bot.slack.called("chat.postMessage", channel=f"D{AUTHOR}")
        assert "approved your correction" in dm["text"]


async def test_someone_who_is_not_a_reviewer_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        for action in (APPROVE_ACTION, EDIT_ACTION, REJECT_ACTION):
            await click(bot, "U9", action)
        refusals = bot.slack.called("chat.postEphemeral", user="U9")
        assert len(refusals) == 3 and all("Only reviewers" in r["text"] for r in refusals)
        assert all(r["channel"] == REVIEW for r in refusals)
        assert correction(bot).status == "pending" and reviews(bot) == []
        assert bot.slack.called("chat.update") == [] and bot.slack.called("conversations.open") == []
        assert len(bot.slack.called("views.open")) == 1  # only the author's correction modal


async def test_two_approvals_are_needed_when_k_is_two(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1", "R2", k=2)) as bot:
        await correct(bot, await ask(bot))
        await click(bot, "R1", APPROVE_ACTION)
        assert correction(bot).status == "pending"
        assert "1 of 2 approvals" in card_text(card(bot)) and APPROVE_ACTION in buttons(card(bot))
        assert bot.slack.called("conversations.open") == []

        await click(bot, "R1", APPROVE_ACTION)  # a second vote from the same reviewer does not count
        [again] = bot.slack.called("chat.postEphemeral", user="R1")
        assert "already reviewed" in again["text"]
        assert correction(bot).status == "pending"

        await click(bot, "R2", APPROVE_ACTION)
        assert correction(bot).status == "approved"
        assert "<@R1>, <@R2>" in card_text(card(bot))
        assert len(bot.slack.called("chat.postMessage", channel=f"D{AUTHOR}")) == 1


async def test_reject_asks_for_a_reason_keeps_it_and_tells_the_author_kindly(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1", "R2", k=2)) as bot:
        await correct(bot, await ask(bot))
        payload = await click(bot, "R1", REJECT_ACTION)
        opened = bot.slack.called("views.open")[-1]
        assert (
            opened["trigger_id"] == payload["trigger_id"] and opened["view"]["callback_id"] == "review_reject"
        )

        empty = await bot.send_interaction(view_submission(user="R1", view=opened["view"], text="  "))
        assert json.loads(empty.content)["response_action"] == "errors"  # a reason is required
        await bot.settled()
        assert correction(bot).status == "pending"

        reason = "The handbook says 27 days; 30 is the senior allowance."
        await bot.send_interaction(view_submission(user="R1", view=opened["view"], text=reason))
        await bot.settled()
        assert correction(bot).status == "rejected"  # one rejection closes it, even with k = 2
        assert reviews(bot) == [("R1", "reject", reason)]
        assert "Rejected" in card_text(card(bot)) and "30 is the senior allowance" in card_text(card(bot))
        [dm] = bot.slack.called("chat.postMessage", channel=f"D{AUTHOR}")
        assert "Thanks for suggesting" in dm["text"] and reason in dm["text"]

        stale = {**bot.slack.called("chat.postMessage", channel=REVIEW)[0], "ts": card(bot)["ts"]}
        await click(bot, "R2", APPROVE_ACTION, message=stale)  # a click from a card not yet refreshed
        [closed] = bot.slack.called("chat.postEphemeral", user="R2")
        assert "already rejected" in closed["text"] and correction(bot).status == "rejected"


async def test_edit_opens_the_text_and_approves_the_edited_version(tmp_path: Path) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        await click(bot, "R1", EDIT_ACTION)
        view = bot.slack.called("views.open")[-1]["view"]
        assert view["blocks"][0]["element"]["initial_value"] == FIX

        edited = "Full-time staff get 30 days a year since 2025."
        await bot.send_interaction(view_submission(user="R1", view=view, text=edited))
        await bot.settled()
        row = correction(bot)
        assert (row.status, row.text) == ("approved", edited)
        assert edited in card_text(card(bot))


@pytest.mark.parametrize("metadata", ["not json", "{}", '{"correction_id": "abc"}'])
async def test_a_review_modal_whose_metadata_names_no_correction_is_refused(
    tmp_path: Path, metadata: str
) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        await click(bot, "R1", EDIT_ACTION)
        view = {**bot.slack.called("views.open")[-1]["view"], "private_metadata": metadata}
        response = await bot.send_interaction(view_submission(user="R1", view=view, text="edited"))
        assert response.status_code == 200
        assert json.loads(response.content) == {
            "response_action": "errors",
            "errors": {"review": STALE_MODAL},
        }
        await bot.settled()
        assert correction(bot).status == "pending" and reviews(bot) == []


async def test_an_approved_correction_is_cited_when_asked_in_other_words(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(
        "# Annual Leave\n\n## Allowance\n\nEveryone gets 25 days of leave a year.\n"
    )
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    kb.ingest([docs], progress=False)
    async with bot_with(tmp_path, reviewing("R1", knowledge=kb)) as bot:
        first = await ask(bot, "how many days of annual leave do I get?")
        assert "Reviewed correction" not in json.dumps(first["blocks"])
        await correct(bot, first, "Full-time staff get 30 days of annual leave a year.")
        await click(bot, "R1", APPROVE_ACTION)
        [dm] = bot.slack.called("chat.postMessage", channel=f"D{AUTHOR}")
        assert "I already use it" in dm["text"]

        again = await ask(bot, "what is the annual leave allowance for full-time staff?")
        sources = next(b for b in again["blocks"] if b["type"] == "context")
        assert "Reviewed correction #1" in json.dumps(sources)
        prompt = bot.model.requests[-1]["messages"][0]["content"]
        assert "30 days of annual leave" in prompt


async def test_corrections_from_elsewhere_get_their_card_from_the_bot(tmp_path: Path) -> None:
    """A correction proposed in Teams, or sent back for review by `chatbot ingest`, has no card yet:
    the bot posts one (it sweeps every 30 s); decisions taken in `chatbot review` reach the card
    the next time someone clicks it."""
    async with bot_with(tmp_path, reviewing("R1", "R2", k=2)) as bot:
        answer = await ask(bot)
        answer_id = answer["metadata"]["event_payload"]["answer_id"]
        desk = bot.deps.review
        assert desk is not None
        case = desk.submit(answer_id=answer_id, author="29:teams-user", text=FIX)  # as Teams does
        client = web_client(bot_token=BOT_TOKEN, api_url=bot.slack.api_url)
        assert await post_missing_cards(bot.deps, client) == 0  # just proposed: its submitter posts it
        assert await post_missing_cards(bot.deps, client, older_than=timedelta(0)) == 1
        assert await post_missing_cards(bot.deps, client, older_than=timedelta(0)) == 0
        assert FIX in card_text(card(bot))

        desk.decide(case.correction.id or 0, reviewer="R1", decision="approve")  # from a terminal
        desk.decide(case.correction.id or 0, reviewer="R2", decision="approve")
        await click(bot, "R1", APPROVE_ACTION)  # the card still shows the buttons
        [note] = bot.slack.called("chat.postEphemeral", user="R1")
        assert "already approved" in note["text"]
        assert "Approved" in card_text(card(bot)) and buttons(card(bot)) == {}

        with bot.database.writer() as session:
            store.reopen_correction(
                session, correction_id=case.correction.id or 0, reason="The page changed."
            )
        assert await post_missing_cards(bot.deps, client) == 1  # back for review: a fresh card at once
        assert "Back for review" in card_text(card(bot)) and APPROVE_ACTION in buttons(card(bot))


@pytest.mark.parametrize("action_id", [APPROVE_ACTION, EDIT_ACTION])
async def test_a_card_for_a_correction_that_is_gone_says_so(tmp_path: Path, action_id: str) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        message = card(bot)
        gone = {
            **message,
            "blocks": json.loads(json.dumps(message["blocks"]).replace('"value": "1"', '"value": "999"')),
        }
        await click(bot, "R1", action_id, message=gone)
        [note] = bot.slack.called("chat.postEphemeral", user="R1")
        assert "There is no correction #999" in note["text"]
        assert correction(bot).status == "pending" and reviews(bot) == []
        assert len(bot.slack.called("views.open")) == 1  # only the author's correction modal


async def test_a_decision_in_the_terminal_updates_the_card_and_tells_the_author(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_with(tmp_path, reviewing("R1")) as bot:
        await correct(bot, await ask(bot))
        for name, value in {
            "DATABASE_URL": bot.database.url,
            "DATA_DIR": str(tmp_path / "data"),
            "EMBEDDING_MODEL": "hashing",
            "REVIEWERS": "R1",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": bot.slack.api_url,
        }.items():
            monkeypatch.setenv(name, value)
        result = await asyncio.to_thread(CliRunner().invoke, main, ["review", "--approve", "1", "--as", "R1"])
        assert result.exit_code == 0, result.output
        assert correction(bot).status == "approved"
        [update] = bot.slack.called("chat.update")
        assert update["ts"] == card(bot)["ts"] and "Approved" in card_text(card(bot))
        [dm] = bot.slack.called("chat.postMessage", channel=f"D{AUTHOR}")
        assert "approved your correction" in dm["text"]


def test_slack_unreachable_from_the_terminal_still_records_the_decision(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database.url
    with database.writer() as s:
        q = store.record_question(s, platform="slack", user_id="U1", text="How much leave?", channel="C1")
        a = store.record_answer(s, question_id=q.id or 0, text="25 days.", adapter="base")
        c = store.submit_correction(s, answer_id=a.id or 0, author=AUTHOR, text=FIX)
        store.attach_review_card(s, correction_id=c.id or 0, channel=REVIEW, ref="1700000000.000001")
    for name, value in {
        "DATABASE_URL": url,
        "DATA_DIR": str(tmp_path / "data"),
        "EMBEDDING_MODEL": "hashing",
        "REVIEWERS": "R1",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens there
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["review", "--approve", str(c.id), "--as", "R1"])
    assert result.exit_code == 0, result.output
    assert "Slack was not told (Slack could not be reached)" in result.output
    with database.reader() as s:
        assert queries.review_case(s, c.id or 0).correction.status == "approved"  # type: ignore[union-attr]


async def test_a_sampled_answer_is_carded_with_its_reasons_and_draft_and_the_draft_can_be_kept(
    tmp_path: Path,
) -> None:
    async with bot_with(tmp_path, reviewing("R1", "R2", "R3", k=2)) as bot:
        answer = await ask(bot)
        answer_id = answer["metadata"]["event_payload"]["answer_id"]
        with bot.database.writer() as session:
            case = store.queue_answer(
                session, answer_id=answer_id, reasons=["low_confidence"], uncertainty=1.2
            )
            assert case is not None and case.id is not None
            store.attach_draft(session, correction_id=case.id, draft=FIX, model="big-model", disagrees=True)
        client = web_client(bot_token=BOT_TOKEN, api_url=bot.slack.api_url)
        assert await post_missing_cards(bot.deps, client, older_than=timedelta(0)) == 1
        text = card_text(card(bot))
        assert f"Answer #{case.id} to check" in text
        assert "low confidence, the teacher's draft disagrees" in text and "*Retrieved*" in text
        assert f"*Draft* by big-model\\n{FIX}" in text
        assert set(buttons(card(bot))) == {APPROVE_ACTION, DRAFT_ACTION, EDIT_ACTION, REJECT_ACTION}

        await click(bot, "R1", APPROVE_ACTION)  # the bot was right, says R1
        await click(bot, "R2", DRAFT_ACTION)  # the draft is, says R2
        assert correction(bot).status == "pending"
        assert "Reviewers disagree" in card_text(card(bot))
        await click(bot, "R3", DRAFT_ACTION)  # a third reviewer decides: two kept the draft
        assert (correction(bot).status, correction(bot).text) == ("approved", FIX)
        assert DRAFT_ACTION not in buttons(card(bot))
