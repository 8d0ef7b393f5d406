"""The review card in Teams: "review" in a chat with the bot shows the queue's next case, its buttons
(Action.Execute invokes in Teams' shape) decide it in the real store through the same desk as Slack
and the console, and the card becomes the next case. The bot runs authenticated: without a token a
reviewer's id could be claimed by anyone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.errors import NotAReviewer
from bot.review.desk import Outcome
from bot.teams import cards, review
from feedback import store
from feedback.db import Database
from feedback.models import Correction, Review
from tests.support.teams_activities import ADA, GRACE, User, card_execute
from tests.support.teams_harness import TeamsBot, running_teams_bot

DRAFT = "You get 26 days of paid annual leave a year."
CAROL = User("29:1Carol-Zz9QwErTyUiOpAsDfGhJkLzXcVbNmQwEr", "0b1c2d3e-2222-4f5a-8b9c-0d1e2f3a4b5c", "Carol")


async def sampled_case(bot: TeamsBot, *, draft: str | None = DRAFT) -> int:
    """An answer nobody voted on, queued by the sampler with the teacher's draft beside it."""
    reply = await bot.ask(user=CAROL)
    answer_id = reply.activity["attachments"][0]["content"]["actions"][0]["card"]["actions"][0]["data"][
        "answer_id"
    ]
    with bot.database.writer() as session:
        case = store.queue_answer(session, answer_id=answer_id, reasons=["low_confidence"], uncertainty=1.2)
        assert case is not None and case.id is not None
        if draft:
            store.attach_draft(session, correction_id=case.id, draft=draft, model="big-model", disagrees=True)
    return case.id


def card_of(activity: dict[str, Any]) -> dict[str, Any]:
    [attachment] = activity["attachments"]
    assert attachment["contentType"] == cards.CARD_TYPE
    return attachment["content"]


def texts(card: dict[str, Any]) -> str:
    return "\n".join(block.get("text", "") for block in card["body"])


def button(card: dict[str, Any], title: str) -> dict[str, Any]:
    """The Execute action titled `title`, also inside a ShowCard (Edit, Reject)."""
    for action in card.get("actions", []):
        if action["title"] == title:
            return action if action["type"] == "Action.Execute" else action["card"]["actions"][0]
    raise AssertionError(f"no {title!r} button: {[a['title'] for a in card.get('actions', [])]}")


async def click(bot: TeamsBot, card: dict[str, Any], title: str, user: User, **inputs: str) -> Any:
    data = button(card, title)["data"] | inputs
    response = await bot.send(card_execute("1718000000001", data, service_url=bot.service_url, user=user))
    assert response.status_code == 200, response.text
    return response.json()


def correction(database: Database, case_id: int) -> Correction:
    with database.reader() as session:
        found = session.get(Correction, case_id)
    assert found is not None
    return found


def reviews(database: Database, case_id: int) -> list[tuple[str, str, str | None]]:
    with database.reader() as session:
        rows = session.exec(select(Review).where(Review.correction_id == case_id).order_by(col(Review.id)))
        return [(r.reviewer, r.decision, r.choice) for r in rows]


async def test_a_sampled_case_shows_why_what_was_retrieved_and_the_draft(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        case_id = await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        shown = texts(card)
        assert f"Answer #{case_id} to check" in shown
        assert "**Queued because:** low confidence, the teacher's draft disagrees" in shown
        assert "**Retrieved**" in shown and "**My answer**" in shown
        assert f"**Draft** by big-model\n\n{DRAFT}" in shown
        titles = [a["title"] for a in card["actions"]]
        assert titles == ["The bot was right", "The draft is right", "Edit", "Reject", "Skip"]
        assert bot.model.requests and len(bot.model.requests) == 1  # "review" was not a question


async def test_two_reviewers_approve_the_draft_from_the_card(tmp_path: Path) -> None:
    reviewers = [ADA.aad_id, GRACE.teams_id]
    async with running_teams_bot(
        tmp_path, authenticated=True, reviewers=reviewers, approvals_required=2
    ) as bot:
        told: list[Outcome] = []

        async def tell(outcome: Outcome) -> None:
            told.append(outcome)

        bot.deps.on_decided = tell
        case_id = await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        first = await click(bot, card, "The draft is right", ADA)
        assert first["type"] == "application/vnd.microsoft.card.adaptive"
        assert f"Your review of #{case_id} is recorded (1 of 2 approvals)" in texts(first["value"])
        assert correction(bot.database, case_id).status == "pending"

        second = await click(bot, card, "The draft is right", GRACE)
        assert f"#{case_id} is approved." in texts(second["value"])
        assert review_cards_empty(second["value"])
        approved = correction(bot.database, case_id)
        assert approved.status == "approved" and approved.text == DRAFT
        assert reviews(bot.database, case_id) == [
            (ADA.aad_id, "approve", "draft"),
            (GRACE.teams_id, "approve", "draft"),
        ]
        await bot.settled()
        assert [o.decided for o in told] == [False, True]


def review_cards_empty(card: dict[str, Any]) -> bool:
    return "Nothing is waiting for your review." in texts(card) and "actions" not in card


async def test_reviewers_who_disagree_leave_the_case_open_and_the_card_says_so(tmp_path: Path) -> None:
    reviewers = [ADA.aad_id, GRACE.aad_id, CAROL.aad_id]
    async with running_teams_bot(
        tmp_path, authenticated=True, reviewers=reviewers, approvals_required=2
    ) as bot:
        case_id = await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        await click(bot, card, "The bot was right", ADA)
        await click(bot, card, "The draft is right", GRACE)
        assert correction(bot.database, case_id).status == "pending"
        third = card_of((await bot.ask("review", user=CAROL)).activity)
        assert "Reviewers disagree" in texts(third)
        assert f"{ADA.aad_id}: the bot's answer" in texts(third)


async def test_an_edit_and_a_rejection_need_their_text(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        case_id = await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        assert await click(bot, card, "Edit", ADA, review_text="  ") == cards.card_error(review.EDIT_EMPTY)
        assert await click(bot, card, "Reject", ADA) == cards.card_error(review.REASON_EMPTY)
        assert reviews(bot.database, case_id) == []

        edited = await click(bot, card, "Edit", ADA, review_text="It is 26 days, in every office.")
        assert f"#{case_id} is approved." in texts(edited["value"])
        assert correction(bot.database, case_id).text == "It is 26 days, in every office."
        assert reviews(bot.database, case_id) == [(ADA.aad_id, "approve", "edit")]


async def test_a_rejection_keeps_its_reason(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        case_id = await sampled_case(bot, draft=None)
        card = card_of((await bot.ask("review")).activity)
        assert "The draft is right" not in [a["title"] for a in card["actions"]]
        response = await click(bot, card, "Reject", ADA, review_reason="Neither says where it applies.")
        assert f"#{case_id} is rejected." in texts(response["value"])
        assert correction(bot.database, case_id).status == "rejected"


async def test_skip_moves_on_and_comes_round_again(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        first, second = await sampled_case(bot), await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        shown = first if f"Answer #{first} to check" in texts(card) else second
        other = second if shown == first else first
        skipped = await click(bot, card, "Skip", ADA)
        assert f"Answer #{other} to check" in texts(skipped["value"])
        again = await click(bot, skipped["value"], "Skip", ADA)
        assert f"Answer #{shown} to check" in texts(again["value"])
        assert reviews(bot.database, first) == reviews(bot.database, second) == []


async def test_someone_not_on_the_list_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        case_id = await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        assert await click(bot, card, "The draft is right", GRACE) == cards.card_error(
            NotAReviewer.user_message
        )
        assert (await bot.ask("review", user=GRACE)).activity["text"] == NotAReviewer.user_message
        assert reviews(bot.database, case_id) == []


async def test_without_authentication_nobody_reviews(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, reviewers=[ADA.aad_id]) as bot:
        case_id = await sampled_case(bot)
        assert (await bot.ask("review")).activity["text"] == review.NEEDS_AUTH
        data = {"action": "reviewCase", "correction_id": case_id, "decision": "approve"}
        response = await bot.send(card_execute("1718000000001", data, service_url=bot.service_url))
        assert response.json() == cards.card_error(review.NEEDS_AUTH)
        assert reviews(bot.database, case_id) == []


@pytest.mark.parametrize(
    "data",
    [
        {"action": "reviewCase", "decision": "approve"},
        {"action": "reviewCase", "correction_id": "twelve", "decision": "approve"},
        {"action": "reviewCase", "correction_id": 1, "decision": "merge"},
        {"action": "reviewCase", "correction_id": 1, "decision": "edit", "review_text": ["a"]},
    ],
)
async def test_a_malformed_click_is_a_400_and_records_nothing(tmp_path: Path, data: dict[str, Any]) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        await sampled_case(bot)
        response = await bot.send(card_execute("1718000000001", data, service_url=bot.service_url))
        assert response.status_code == 400
        assert response.json() == cards.card_error(cards.BAD_SUBMISSION)
        assert reviews(bot.database, 1) == []


async def test_a_users_correction_is_approved_from_the_card(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        reply = await bot.ask(user=CAROL)
        form = reply.activity["attachments"][0]["content"]["actions"][0]["card"]
        data = form["actions"][0]["data"] | {"correction": "You get 26 days a year."}
        await bot.send(card_execute(reply.id, data, service_url=bot.service_url, user=CAROL))
        card = card_of((await bot.ask("review")).activity)
        assert "Correction #1 to review" in texts(card)
        assert "**Proposed correction**\n\nYou get 26 days a year." in texts(card)
        assert [a["title"] for a in card["actions"]] == ["Approve", "Edit", "Reject", "Skip"]
        response = await click(bot, card, "Approve", ADA)
        assert "#1 is approved." in texts(response["value"])
        assert reviews(bot.database, 1) == [(ADA.aad_id, "approve", None)]


async def test_a_case_deleted_by_a_privacy_request_is_gone_from_the_card(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, authenticated=True, reviewers=[ADA.aad_id]) as bot:
        case_id = await sampled_case(bot)
        card = card_of((await bot.ask("review")).activity)
        assert bot.deps.review is not None
        bot.deps.review.forget(CAROL.aad_id)  # the asker's data deleted while the card was open
        response = await click(bot, card, "The draft is right", ADA)
        assert f"#{case_id}: There is no correction #{case_id}" in texts(response["value"])
        assert review_cards_empty(response["value"])
