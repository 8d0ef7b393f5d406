"""Reviews in Teams: a reviewer sends "review" to the bot and gets the queue's next case as a card
(`review_cards`); its buttons decide it through the same desk as Slack's cards, the console and
`chatbot review`, and the card turns into the next case. Reviewers are REVIEWERS' ids (an Azure AD
object id or a Teams id), recognised only on an authenticated connection: without a Bot Framework
token anyone could claim a reviewer's id."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, Attachment

from bot.errors import NotAReviewer
from bot.review.desk import REASON_NEEDED, Outcome, ReviewDesk
from bot.teams import access, cards, replies, review_cards, translate
from bot.teams.deps import TeamsDeps
from bot.teams.translate import ReviewAction
from feedback.errors import FeedbackError
from feedback.queries import ReviewCase

log = logging.getLogger(__name__)
COMMAND = "review"
NO_REVIEW = "Reviews are not set up here, so nothing was changed."
NEEDS_AUTH = (
    "Reviews work only when the bot is connected to Teams with Bot Framework authentication "
    "(MICROSOFT_APP_ID); this connection has none, so I can't tell who you are."
)
EDIT_EMPTY = "Write the right answer before sending the edit."
REASON_EMPTY = REASON_NEEDED


def is_command(text: str) -> bool:
    return text.strip().lower() == COMMAND


def _desk_and_reviewer(context: TurnContext, deps: TeamsDeps) -> tuple[ReviewDesk, str] | str:
    """The desk and which of the sender's ids is a reviewer's; otherwise why they may not review."""
    if deps.review is None:
        return NO_REVIEW
    if not access.channel_authenticated(context):
        return NEEDS_AUTH
    ids = translate.user_ids(context.activity)
    reviewer = next((i for i in ids if deps.review.is_reviewer(i)), None)
    if reviewer is None:
        log.info("%s is not a reviewer; Teams review refused", ids[:1])
        return NotAReviewer.user_message
    return deps.review, reviewer


def next_case(desk: ReviewDesk, reviewer: str, *, after: int | None = None) -> ReviewCase | None:
    """The most urgent pending case this reviewer has not voted on; with `after`, the one that
    follows that case in the queue (wrapping round), so Skip moves on."""
    cases = [c for c in desk.queue() if all(r.reviewer != reviewer for r in c.reviews)]
    ids = [c.correction.id for c in cases]
    if after is not None and after in ids:
        at = ids.index(after)
        cases = cases[at + 1 :] + cases[:at]
    return cases[0] if cases else None


def _card(desk: ReviewDesk, case: ReviewCase | None, note: str | None) -> cards.Card:
    if case is None:
        return review_cards.empty_card(note)
    return review_cards.case_card(case, approvals_required=desk.policy.approvals_required, note=note)


async def on_command(context: TurnContext, deps: TeamsDeps) -> None:
    """The first case as a card, in reply to "review"."""
    allowed = _desk_and_reviewer(context, deps)
    if isinstance(allowed, str):
        await replies.now(context).send(cards.notice(allowed))
        return
    desk, reviewer = allowed
    case = await asyncio.to_thread(next_case, desk, reviewer)
    card = _card(desk, case, None)
    attachment = Attachment(content_type=cards.CARD_TYPE, content=card)
    await replies.now(context).send(Activity(type="message", attachments=[attachment]))


async def on_execute(context: TurnContext, deps: TeamsDeps) -> None:
    """A button on the review card: the decision recorded, the card replaced by the next case."""
    async with deps.inflight.track():
        action = translate.to_review(context.activity)
        allowed = _desk_and_reviewer(context, deps)
        if isinstance(allowed, str):
            await replies.invoke_response(context, cards.card_error(allowed))
            return
        desk, reviewer = allowed
        problem = _missing_text(action)
        if problem is not None:
            await replies.invoke_response(context, cards.card_error(problem))
            return
        note = None if action.decision == "skip" else await _decide(deps, desk, reviewer, action)
        case = await asyncio.to_thread(next_case, desk, reviewer, after=action.correction_id)
        await replies.invoke_response(context, review_cards.card_response(_card(desk, case, note)))


def _missing_text(action: ReviewAction) -> str | None:
    if action.decision == "edit" and not action.text:
        return EDIT_EMPTY
    if action.decision == "reject" and not action.text:
        return REASON_EMPTY
    return None


async def _decide(deps: TeamsDeps, desk: ReviewDesk, reviewer: str, action: ReviewAction) -> str:
    """Record the decision; what became of the case, in a line for the card's top."""
    number = action.correction_id
    if action.decision == "reject":
        args: dict[str, Any] = {"decision": "reject", "reason": action.text[: review_cards.REASON_LIMIT]}
    elif action.decision == "edit":
        args = {"decision": "approve", "edited_text": action.text[: review_cards.TEXT_LIMIT]}
    else:
        args = {"decision": "approve", "choice": "draft" if action.decision == "draft" else None}
    try:
        outcome: Outcome = await asyncio.to_thread(desk.decide, number, reviewer=reviewer, **args)
    except FeedbackError as exc:  # decided already, voted already, no draft: say so, move on
        log.info("Teams review of case %s by %s refused: %s", number, reviewer, exc)
        return f"#{number}: {exc}"
    if deps.on_decided is not None:  # the Slack card, and the author wherever they asked
        deps.spawn(_tell(deps, outcome))
    status = outcome.case.correction.status
    if status != "pending":
        return f"#{number} is {status}."
    votes = f"{len(outcome.case.approvals)} of {desk.policy.approvals_required} approvals"
    return f"Your review of #{number} is recorded ({votes}); another reviewer decides."


async def _tell(deps: TeamsDeps, outcome: Outcome) -> None:
    assert deps.on_decided is not None
    problem = await deps.on_decided(outcome)
    if problem:
        log.warning("after a Teams review of case %s: %s", outcome.case.correction.id, problem)
