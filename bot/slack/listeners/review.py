"""The review queue: each new correction is posted as a card to the review channel; reviewers
approve, edit (a modal, then approve the edited text) or reject (a modal asking why) from it. Anyone
else is told, privately, that only reviewers may, and nothing changes. After each decision the card
is updated in place; when the correction is approved or rejected, its author gets a direct message
(or, when they suggested it in Teams, a message there: `Deps.tell_elsewhere`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import NotAReviewer
from bot.review.desk import Outcome, ReviewDesk
from bot.slack import review_blocks
from bot.slack.deps import Deps
from bot.slack.notify import direct_message, open_modal, tell
from bot.slack.review_blocks import ReviewClick, ReviewSubmission
from feedback.errors import FeedbackError
from feedback.queries import ReviewCase

log = logging.getLogger(__name__)
Payload = dict[str, Any]
NO_REVIEW = "Reviews are not set up in this workspace, so nothing was changed."
PLATFORM = "slack"


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(review_blocks.APPROVE_ACTION)
    async def on_approve(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        click = review_blocks.to_click(body)
        if click is not None:
            async with deps.inflight.track():
                await decide(deps, client, click, decision="approve")

    @app.action(review_blocks.DRAFT_ACTION)
    async def on_draft(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        click = review_blocks.to_click(body)
        if click is not None:
            async with deps.inflight.track():
                await decide(deps, client, click, decision="approve", choice="draft")

    @app.action(review_blocks.EDIT_ACTION)
    @app.action(review_blocks.REJECT_ACTION)
    async def on_edit_or_reject(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        click = review_blocks.to_click(body)
        if click is None:
            return
        async with deps.inflight.track():
            desk = await _desk_for(deps, client, click.user_id, click.channel)
            if desk is None:
                return
            if click.action == review_blocks.REJECT_ACTION:
                view = review_blocks.reject_modal(click)
            else:
                case = await asyncio.to_thread(desk.case, click.correction_id)
                if case is None:
                    gone = f"There is no correction #{click.correction_id} any more."
                    await tell(client, channel=click.channel, user=click.user_id, thread_ts="", text=gone)
                    return
                view = review_blocks.edit_modal(click, case.correction.text)
            # The trigger id expires 3 s after the click.
            await open_modal(
                client, trigger_id=click.trigger_id, view=view, user=click.user_id, channel=click.channel
            )

    @app.view(review_blocks.EDIT_VIEW)
    @app.view(review_blocks.REJECT_VIEW)
    async def on_modal(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        submission = review_blocks.to_submission(body)
        if submission is None:
            log.warning("a review modal without its correction id was submitted; nothing recorded")
            await ack(response_action="errors", errors={review_blocks.VIEW_BLOCK: review_blocks.STALE_MODAL})
            return
        problem = review_blocks.submission_error(submission)
        if problem is not None:
            await ack(response_action="errors", errors={review_blocks.VIEW_BLOCK: problem})
            return
        await ack()
        async with deps.inflight.track():
            await decide_submission(deps, client, submission)


async def _desk_for(deps: Deps, client: AsyncWebClient, user: str, channel: str) -> ReviewDesk | None:
    """The review desk if `user` may use it; otherwise they are told why not, privately."""
    if deps.review is None:
        await tell(client, channel=channel, user=user, thread_ts="", text=NO_REVIEW)
        return None
    if not deps.review.is_reviewer(user):
        log.info("%s is not a reviewer; review action refused", user)
        await tell(client, channel=channel, user=user, thread_ts="", text=NotAReviewer.user_message)
        return None
    return deps.review


async def decide(
    deps: Deps, client: AsyncWebClient, click: ReviewClick, *, decision: str, choice: str | None = None
) -> None:
    desk = await _desk_for(deps, client, click.user_id, click.channel)
    if desk is not None:
        extra = {"choice": choice} if choice else {}
        await _record(
            deps, desk, client, click.correction_id, click.user_id, click.channel, decision=decision, **extra
        )


async def decide_submission(deps: Deps, client: AsyncWebClient, submission: ReviewSubmission) -> None:
    desk = await _desk_for(deps, client, submission.user_id, submission.channel)
    if desk is None:
        return
    if submission.view == review_blocks.REJECT_VIEW:
        args: dict[str, Any] = {"decision": "reject", "reason": submission.text}
    else:
        case = await asyncio.to_thread(desk.case, submission.correction_id)
        unchanged = case is not None and case.correction.text.strip() == submission.text
        args = {"decision": "approve", "edited_text": None if unchanged else submission.text}
    await _record(
        deps, desk, client, submission.correction_id, submission.user_id, submission.channel, **args
    )


async def _record(
    deps: Deps,
    desk: ReviewDesk,
    client: AsyncWebClient,
    correction_id: int,
    user: str,
    channel: str,
    **decision: Any,
) -> None:
    try:
        outcome: Outcome = await asyncio.to_thread(desk.decide, correction_id, reviewer=user, **decision)
    except FeedbackError as exc:  # decided already, or this reviewer voted already: say so
        log.info("review of correction %s by %s refused: %s", correction_id, user, exc)
        await tell(client, channel=channel, user=user, thread_ts="", text=str(exc))
        case = await asyncio.to_thread(desk.case, correction_id)
        if case is not None:  # it may have been decided elsewhere (`chatbot review`): show that
            await update_card(deps, client, case)
        return
    await update_card(deps, client, outcome.case)
    if outcome.decided:
        await tell_author(client, outcome)
        if deps.tell_elsewhere is not None:  # an author in Teams
            await deps.tell_elsewhere(outcome)


async def post_card(deps: Deps, client: AsyncWebClient, case: ReviewCase) -> None:
    """Post a new correction's card to the review channel and remember where it is."""
    if deps.review is None or not deps.review_channel:
        return
    card = review_blocks.review_card(case, approvals_required=deps.review.policy.approvals_required)
    try:
        posted = await client.chat_postMessage(channel=deps.review_channel, **card.as_kwargs())
    except SlackApiError as exc:
        log.warning(
            "could not post correction %s to %s: %s",
            case.correction.id,
            deps.review_channel,
            exc.response.get("error"),
        )
        return
    await asyncio.to_thread(
        deps.review.set_card, case.correction.id or 0, channel=str(posted["channel"]), ref=str(posted["ts"])
    )


async def post_missing_cards(
    deps: Deps, client: AsyncWebClient, *, older_than: timedelta = timedelta(seconds=30)
) -> int:
    """Cards for pending corrections that have none: proposed on another platform (Teams), or sent
    back for review by another process (`chatbot ingest`). The bot runs this every little while."""
    if deps.review is None or not deps.review_channel:
        return 0
    cases = await asyncio.to_thread(deps.review.without_card, older_than=older_than)
    for case in cases:
        await post_card(deps, client, case)
    return len(cases)


async def update_card(deps: Deps, client: AsyncWebClient, case: ReviewCase) -> None:
    correction = case.correction
    if deps.review is None or not correction.card_channel or not correction.card_ref:
        return
    card = review_blocks.review_card(case, approvals_required=deps.review.policy.approvals_required)
    try:
        await client.chat_update(
            channel=correction.card_channel, ts=correction.card_ref, text=card.text, blocks=card.blocks
        )
    except SlackApiError as exc:
        log.warning(
            "could not update the card of correction %s: %s", correction.id, exc.response.get("error")
        )


async def tell_author(client: AsyncWebClient, outcome: Outcome) -> None:
    """A direct message to whoever suggested the correction, if they asked in Slack."""
    case = outcome.case
    if case.question.platform != PLATFORM:
        return
    if case.correction.status == "approved":
        text = review_blocks.approved_note(case, in_use=outcome.indexed)
    else:
        text = review_blocks.rejected_note(case)
    await direct_message(client, user=case.correction.author, text=text)
