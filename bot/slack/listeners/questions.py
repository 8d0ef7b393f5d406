"""Questions: a mention in a channel, a direct message, an assistant thread, a follow-up in a thread
the bot answered. Each listener runs after Bolt has acknowledged the event (Bolt acks Events API
deliveries before it starts the listener), so nothing here holds up Slack's 3-second deadline."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.pipeline import ask
from bot.prompts import Turn
from bot.slack import blocks, fields, translate
from bot.slack.blocks import Reply
from bot.slack.deps import Deps

log = logging.getLogger(__name__)
Payload = dict[str, Any]
# conversations.replies pages from the oldest message: read whole threads (up to 1000 messages) so
# the latest turns are there; the prompt then keeps the most recent ones that fit.
PAGE_SIZE, MAX_PAGES = 200, 5


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention")
    async def on_mention(
        body: Payload, event: Payload, context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        if translate.is_from_bot(event) or event.get("subtype") or not translate.is_placed(event):
            return
        await answer_in_thread(deps, client, context, body, event, follow_up=False)

    @app.event("message")
    async def on_message(
        body: Payload, event: Payload, context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        kind = translate.message_kind(event, bot_user_id=context.bot_user_id)
        if kind is not None:
            await answer_in_thread(deps, client, context, body, event, follow_up=kind == "follow_up")

    @app.event("assistant_thread_started")
    async def on_assistant_thread(body: Payload, event: Payload, client: AsyncWebClient) -> None:
        thread = fields.obj(event.get("assistant_thread"))
        channel, thread_ts = fields.text(thread.get("channel_id")), fields.text(thread.get("thread_ts"))
        if not channel or not thread_ts:
            return
        async with deps.inflight.track():
            if not await deps.records.claim(translate.delivery_key(body)):
                return
            await post(client, channel, thread_ts, [blocks.notice(blocks.GREETING)])


async def answer_in_thread(
    deps: Deps,
    client: AsyncWebClient,
    context: AsyncBoltContext,
    body: Payload,
    event: Payload,
    *,
    follow_up: bool,
) -> None:
    # Acked already; wait here for a turn (Deps.answering), then do everything, in this order:
    # read the thread, claim the delivery, show "thinking", answer, post, record where it was posted.
    async with deps.inflight.track(), deps.answering:
        channel, thread = event["channel"], translate.thread_of(event)
        history: list[Turn] = []
        if event.get("thread_ts"):
            messages = await read_thread(client, channel, thread)
            took_part = any(
                translate.is_bot_message(m, bot_user_id=context.bot_user_id, bot_id=context.bot_id)
                for m in messages
            )
            if follow_up and not took_part:
                return  # people talking among themselves in a thread the bot never joined
            history = translate.to_turns(
                messages, bot_user_id=context.bot_user_id, bot_id=context.bot_id, before_ts=event["ts"]
            )
        if not await deps.records.claim(translate.delivery_key(body)):
            log.info("event %s was a retry of one already answered", body.get("event_id"))
            return

        question = translate.to_question(
            event, bot_user_id=context.bot_user_id, team_id=context.team_id or ""
        )
        await show_thinking(client, channel, thread)
        answer, replies = await ask(
            deps.pipeline, question, history, reply=blocks.to_reply, notice=lambda text: [blocks.notice(text)]
        )
        last_ts = await post(client, channel, thread, replies)
        if answer is not None and answer.answer_id is not None and last_ts:
            # Right after posting, before anything else: reactions find their answer by this ts.
            await deps.records.attach_reply(answer.answer_id, channel, last_ts)


async def read_thread(client: AsyncWebClient, channel: str, thread: str) -> list[Payload]:
    messages: list[Payload] = []
    cursor = None
    try:
        for _ in range(MAX_PAGES):
            response = await client.conversations_replies(
                channel=channel, ts=thread, limit=PAGE_SIZE, cursor=cursor, include_all_metadata=True
            )
            messages += response.get("messages") or []
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not response.get("has_more") or not cursor:
                break
    except SlackApiError as exc:
        log.warning("could not read thread %s/%s: %s", channel, thread, exc.response.get("error"))
    return messages


async def show_thinking(client: AsyncWebClient, channel: str, thread: str) -> None:
    """Slack clears the status by itself when the reply is posted."""
    try:
        await client.assistant_threads_setStatus(channel_id=channel, thread_ts=thread, status=blocks.THINKING)
    except SlackApiError as exc:
        log.debug("no thinking status in %s: %s", channel, exc.response.get("error"))


async def post(client: AsyncWebClient, channel: str, thread: str, replies: list[Reply]) -> str | None:
    """Post the replies in order; the ts of the last one posted."""
    last_ts = None
    for reply in replies:
        try:
            response = await client.chat_postMessage(channel=channel, thread_ts=thread, **reply.as_kwargs())
        except SlackApiError as exc:
            log.error("could not reply in %s/%s: %s", channel, thread, exc.response.get("error"))
            break
        last_ts = response.get("ts")
    return last_ts
