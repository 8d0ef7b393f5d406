"""Questions: a mention in a channel, a direct message, an assistant thread, a follow-up in a thread
the bot answered. Each listener runs after Bolt has acknowledged the event (Bolt acks Events API
deliveries before it starts the listener), so nothing here holds up Slack's 3-second deadline.

The answer is streamed into the thread as the model writes it (`bot.slack.stream`) and ends with its
sources and feedback controls; where streaming fails, the whole answer is posted instead, once."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbox import settle
from bot.pipeline import Answer, ask_streamed
from bot.prompts import Turn
from bot.slack import blocks, fields, translate
from bot.slack.blocks import Reply
from bot.slack.deps import Deps
from bot.slack.stream import AnswerStream

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
            await suggest_prompts(deps, client, channel, thread_ts)
            await post(client, channel, thread_ts, [blocks.notice(blocks.GREETING)])

    @app.event("app_home_opened")
    async def on_home_opened(event: Payload, client: AsyncWebClient) -> None:
        # The agent messaging experience's Messages tab (agent_view): its prompts sit above the DM.
        if event.get("tab") == "messages" and fields.text(event.get("channel")):
            async with deps.inflight.track():
                await suggest_prompts(deps, client, fields.text(event.get("channel")))


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
        answering = answer_claimed(deps, client, context, body, event, follow_up=follow_up)
        await settle(deps.inbox, translate.delivery_key(body), answering)


async def answer_claimed(
    deps: Deps,
    client: AsyncWebClient,
    context: AsyncBoltContext,
    body: Payload,
    event: Payload,
    *,
    follow_up: bool,
) -> bool:
    """False where another delivery of the same event is being answered (nothing to finish here)."""
    channel, thread = event["channel"], translate.thread_of(event)
    history: list[Turn] = []
    if event.get("thread_ts"):
        messages = await read_thread(client, channel, thread)
        took_part = any(
            translate.is_bot_message(m, bot_user_id=context.bot_user_id, bot_id=context.bot_id)
            for m in messages
        )
        if follow_up and not took_part:
            return True  # people talking among themselves in a thread the bot never joined
        history = translate.to_turns(
            messages, bot_user_id=context.bot_user_id, bot_id=context.bot_id, before_ts=event["ts"]
        )
    key = translate.delivery_key(body)
    claimed = await deps.records.claim(key)
    if not claimed and not (deps.inbox is not None and await deps.inbox.mine(key)):
        log.info("event %s was a retry of one already answered", body.get("event_id"))
        return False

    question = translate.to_question(event, bot_user_id=context.bot_user_id, team_id=context.team_id or "")
    await show_thinking(client, channel, thread)
    if event.get("channel_type") == "im" and not history:
        await set_title(client, channel, thread, question.text)
    stream = AnswerStream(
        client,
        channel,
        thread,
        team_id=context.team_id or "",
        user_id=fields.text(event.get("user")),
        interval=deps.stream_interval,
    )
    answer, notice = await ask_streamed(deps.pipeline, question, history, on_text=stream.add)
    last_ts = await deliver(client, channel, thread, stream, answer, notice)
    if answer is not None and answer.answer_id is not None and last_ts:
        # Right after posting, before anything else: reactions find their answer by this ts.
        await deps.records.attach_reply(answer.answer_id, channel, last_ts)
    return True


async def deliver(
    client: AsyncWebClient,
    channel: str,
    thread: str,
    stream: AnswerStream,
    answer: Answer | None,
    notice: str,
) -> str | None:
    """End the stream with the answer's footer; where it broke, the whole answer another way (the
    stream's message updated, or posted anew). The ts the answer is shown at, None without one."""
    if answer is None:
        if stream.ts is not None and not stream.broken:
            await stream.add(f"\n\n{notice}")
            await stream.finish([])
            return None
        await post(client, channel, thread, [blocks.notice(notice)])
        return None
    tail, metadata = blocks.footer(answer)
    if await stream.finish(tail, metadata):
        return stream.ts
    replies = blocks.to_reply(answer)
    if stream.ts is not None and len(replies) == 1:
        reply = replies[0]
        try:
            await client.chat_update(
                channel=channel, ts=stream.ts, text=reply.text, blocks=reply.blocks, metadata=reply.metadata
            )
            return stream.ts
        except SlackApiError as exc:
            log.warning("could not finish the streamed answer in %s: %s", channel, exc.response.get("error"))
    return await post(client, channel, thread, replies)


async def suggest_prompts(
    deps: Deps, client: AsyncWebClient, channel: str, thread_ts: str | None = None
) -> None:
    """The most asked questions as the assistant's suggested prompts; none until questions repeat."""
    asked = await deps.records.most_asked(limit=blocks.MAX_PROMPTS)
    if not asked:
        return
    try:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=channel, thread_ts=thread_ts, title=blocks.PROMPTS_TITLE, prompts=blocks.prompts(asked)
        )
    except SlackApiError as exc:
        log.debug("no suggested prompts in %s: %s", channel, exc.response.get("error"))


async def set_title(client: AsyncWebClient, channel: str, thread: str, question: str) -> None:
    try:
        await client.assistant_threads_setTitle(
            channel_id=channel, thread_ts=thread, title=blocks.title(question)
        )
    except SlackApiError as exc:
        log.debug("no thread title in %s: %s", channel, exc.response.get("error"))


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
    """Slack clears the status by itself when the reply is posted (or starts streaming)."""
    try:
        await client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread, status=blocks.THINKING, loading_messages=blocks.LOADING
        )
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
