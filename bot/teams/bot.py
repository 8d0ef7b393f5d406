"""The bot: one turn per activity, dispatched by kind to the handler that translates it, and the
turn-error handler that tells the person something went wrong (never what: logs keep that)."""

from __future__ import annotations

import logging

from botbuilder.core import TurnContext
from botbuilder.schema import ActivityTypes

from bot.errors import BotError
from bot.teams import cards, corrections, feedback, questions, replies, review, translate
from bot.teams.deps import TeamsDeps

log = logging.getLogger(__name__)


class TeamsBot:
    def __init__(self, deps: TeamsDeps) -> None:
        self.deps = deps

    async def on_turn(self, context: TurnContext) -> None:
        activity, deps = context.activity, self.deps
        if activity.type == ActivityTypes.message:
            if translate.is_correction(activity):
                await corrections.on_submit(context, deps)
            else:
                await questions.on_message(context, deps)
        elif activity.type == ActivityTypes.invoke:
            await self._invoke(context)
        elif activity.type == ActivityTypes.message_reaction:
            await feedback.on_reaction(context, deps)
        elif activity.type == ActivityTypes.conversation_update:
            await self._greet(context)

    async def _invoke(self, context: TurnContext) -> None:
        activity, deps = context.activity, self.deps
        try:
            if activity.name == translate.FEEDBACK_INVOKE:
                await feedback.on_submit_action(context, deps)
            elif activity.name == translate.CARD_INVOKE and translate.is_correction(activity):
                await corrections.on_execute(context, deps)
            elif activity.name == translate.CARD_INVOKE and translate.is_review(activity):
                await review.on_execute(context, deps)
            else:
                await _unknown_invoke(context)
        except translate.Malformed as exc:  # raised before anything is stored
            log.warning("refused a %s invoke: %s", activity.name, exc)
            body = cards.card_error(cards.BAD_SUBMISSION) if activity.name == translate.CARD_INVOKE else {}
            await replies.invoke_response(context, body, status=400)

    async def _greet(self, context: TurnContext) -> None:
        """Say hello when someone installs the bot for a personal chat."""
        activity = context.activity
        bot_id = getattr(activity.recipient, "id", None)
        added = [getattr(m, "id", None) for m in activity.members_added or []]
        if bot_id in added and not translate.is_group(activity):
            await replies.now(context).send(cards.notice(cards.GREETING))


async def _unknown_invoke(context: TurnContext) -> None:
    """400, not botbuilder's 501: the bot's cards and manifest offer no other invoke, so another one is
    a bad request; Teams shows a failed action for either, and a 5xx anyone can cause reads as an outage."""
    name = context.activity.name
    log.info("refused an invoke this bot does not offer: %r", str(name)[:80])
    if name == translate.CARD_INVOKE:
        await replies.invoke_response(context, cards.card_error(cards.UNKNOWN_ACTION), status=400)
    else:
        await replies.invoke_response(context, {"error": cards.UNKNOWN_INVOKE}, status=400)


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """A short apology to the person; an invoke is answered 500 so Teams shows it failed."""
    log.error("Teams turn for a %s activity failed", context.activity.type, exc_info=error)
    try:
        if context.activity.type == ActivityTypes.invoke:
            await replies.invoke_response(context, {}, status=500)
        await context.send_activity(cards.notice(BotError.user_message))
    except Exception as exc:
        log.warning("could not tell the user about the failure: %s", exc)
