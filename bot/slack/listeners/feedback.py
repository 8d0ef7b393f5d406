"""Votes: the native 👍/👎 feedback buttons under an answer, and 👍/👎 reactions on it. One vote per
person per answer (the store keeps the latest); removing a reaction takes its vote back; a 👎 invites
the person to suggest a correction."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks, translate
from bot.slack.deps import Deps
from bot.slack.translate import Feedback
from feedback.errors import FeedbackError

log = logging.getLogger(__name__)
Payload = dict[str, Any]


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(translate.FEEDBACK_ACTION)
    async def on_feedback_button(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        feedback = translate.to_feedback(body)
        if feedback is not None:
            async with deps.inflight.track():
                await record(deps, client, feedback)

    @app.event("reaction_added")
    async def on_reaction_added(
        body: Payload, event: Payload, context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await on_reaction(deps, client, context, body, event)

    @app.event("reaction_removed")
    async def on_reaction_removed(
        body: Payload, event: Payload, context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await on_reaction(deps, client, context, body, event)


async def on_reaction(
    deps: Deps, client: AsyncWebClient, context: AsyncBoltContext, body: Payload, event: Payload
) -> None:
    feedback = translate.to_feedback(event, bot_user_id=context.bot_user_id)
    if feedback is None:
        return
    async with deps.inflight.track():
        if await deps.records.claim(translate.delivery_key(body)):
            await record(deps, client, feedback)


async def record(deps: Deps, client: AsyncWebClient, feedback: Feedback) -> None:
    answer_id = feedback.answer_id
    if answer_id is None:
        answer_id = await deps.records.answer_for_reply(
            feedback.channel, feedback.message_ts, wait=feedback.on_bot_message
        )
    if answer_id is None:
        return  # a reaction on a message that is not one of the bot's answers
    try:
        if feedback.withdrawn:
            await deps.records.withdraw(
                answer_id=answer_id, user_id=feedback.user_id, value=feedback.value, source=feedback.source
            )
            return
        await deps.records.vote(
            answer_id=answer_id, user_id=feedback.user_id, value=feedback.value, source=feedback.source
        )
    except FeedbackError as exc:
        log.warning("vote on answer %s not recorded: %s", answer_id, exc)
        return
    if feedback.value < 0:
        await invite_correction(deps, client, answer_id, feedback.user_id)


async def invite_correction(deps: Deps, client: AsyncWebClient, answer_id: int, user_id: str) -> None:
    place = await deps.records.place(answer_id)
    if place is None or not place.channel:
        return
    invite = blocks.correction_invite(answer_id)
    try:
        await client.chat_postEphemeral(
            channel=place.channel,
            user=user_id,
            thread_ts=place.thread_ts or None,
            text=invite.text,
            blocks=invite.blocks,
        )
    except SlackApiError as exc:
        log.warning(
            "could not invite %s to correct answer %s: %s", user_id, answer_id, exc.response.get("error")
        )
