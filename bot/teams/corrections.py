"""Corrections from the "Suggest a correction" form under an answer: its Action.Execute arrives as an
`adaptiveCard/action` invoke (answered with a message for the person, or an error that leaves the
form as it was), its Action.Submit fallback as a message (answered with a reply)."""

from __future__ import annotations

import logging

from botbuilder.core import TurnContext

from bot.teams import cards, replies, translate
from bot.teams.deps import TeamsDeps
from bot.teams.translate import CorrectionSubmission
from feedback.errors import FeedbackError

log = logging.getLogger(__name__)


async def on_execute(context: TurnContext, deps: TeamsDeps) -> None:
    async with deps.inflight.track():
        problem = await store(context, deps)
        body = cards.card_message(cards.CORRECTION_THANKS) if problem is None else cards.card_error(problem)
        await replies.invoke_response(context, body)


async def on_submit(context: TurnContext, deps: TeamsDeps) -> None:
    async with deps.inflight.track():
        problem = await store(context, deps)
        await replies.now(context).send(cards.notice(problem or cards.CORRECTION_THANKS))


async def store(context: TurnContext, deps: TeamsDeps) -> str | None:
    """Store the submitted correction; what is wrong with it, or None once it is stored (or was,
    by an earlier delivery of the same activity)."""
    try:
        submission = translate.to_correction(context.activity)
    except translate.Malformed as exc:
        log.warning("refused a correction: %s", exc)
        return cards.BAD_SUBMISSION
    if submission is None:
        return cards.MISSING_ANSWER
    problem = await check(deps, submission)
    if problem is not None or submission.answer_id is None:
        return problem or cards.MISSING_ANSWER
    if not await deps.records.claim(translate.delivery_key(context.activity)):
        return None
    try:
        await deps.records.correct(
            answer_id=submission.answer_id,
            author=submission.user_id,
            text=submission.text,
            author_conversation=replies.reference_of(context.activity),  # to tell them the decision
        )
    except FeedbackError as exc:
        log.warning("correction of answer %s not stored: %s", submission.answer_id, exc)
        return str(exc)
    return None


async def check(deps: TeamsDeps, submission: CorrectionSubmission) -> str | None:
    if submission.answer_id is None:
        return cards.MISSING_ANSWER
    if not submission.text:
        return cards.CORRECTION_EMPTY
    place = await deps.records.place(submission.answer_id)
    if place is None:
        return cards.MISSING_ANSWER
    if " ".join(submission.text.split()) == " ".join(place.text.split()):
        return cards.CORRECTION_UNCHANGED
    return None
