"""Votes: Teams' own 👍/👎 under an answer (the `message/submitAction` invoke, answered 200 with
`{}`), and 👍/👎 reactions on it. One vote per person per answer (the store keeps the latest);
removing a reaction takes its vote back; a 👎 with a comment is also stored as a pending correction."""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import TurnContext

from bot.teams import replies, translate
from bot.teams.deps import TeamsDeps
from bot.teams.translate import Feedback
from feedback.errors import FeedbackError

log = logging.getLogger(__name__)


async def on_submit_action(context: TurnContext, deps: TeamsDeps) -> None:
    """`translate.Malformed` for a value Teams would not send, before anything is stored."""
    votes = translate.to_feedback(context.activity)
    async with deps.inflight.track():
        if await deps.records.claim(translate.delivery_key(context.activity)):
            for feedback in votes:
                await record(deps, feedback, replies.reference_of(context.activity))
        await replies.invoke_response(context, {})


async def on_reaction(context: TurnContext, deps: TeamsDeps) -> None:
    votes = translate.to_feedback(context.activity)
    if not votes:
        return
    async with deps.inflight.track():
        if await deps.records.claim(translate.delivery_key(context.activity)):
            for feedback in votes:
                await record(deps, feedback)


async def record(deps: TeamsDeps, feedback: Feedback, reference: dict[str, Any] | None = None) -> None:
    """`reference`: the conversation the feedback came from, where the author of a correction (a 👎
    with a comment) is told what reviewers decided."""
    # wait: a click can race the write that attaches the reply's id to its answer.
    answer_id = await deps.records.answer_for_reply(feedback.conversation, feedback.reply_to_id, wait=True)
    if answer_id is None:
        log.info("feedback on message %s, which is not a recorded answer", feedback.reply_to_id)
        return
    try:
        if feedback.withdrawn:
            await deps.records.withdraw(
                answer_id=answer_id, user_id=feedback.user_id, value=feedback.value, source=feedback.source
            )
            return
        await deps.records.vote(
            answer_id=answer_id,
            user_id=feedback.user_id,
            value=feedback.value,
            source=feedback.source,
            comment=feedback.comment,
        )
        if feedback.value < 0 and feedback.comment:
            await deps.records.correct(
                answer_id=answer_id,
                author=feedback.user_id,
                text=feedback.comment,
                author_conversation=reference,
            )
    except FeedbackError as exc:
        log.warning("feedback on answer %s not recorded: %s", answer_id, exc)
