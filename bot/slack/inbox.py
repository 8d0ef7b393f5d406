"""Slack's side of `bot.inbox`: Bolt acknowledges an Events API delivery only after its middleware
has run, so `keeping` (middleware) writes a question down before Slack hears 200; a question taken
over from a replica that died is dispatched through this replica's Bolt app again (`redispatch`), as
a Socket Mode request: its signature was checked when it first came."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.inbox import Handler, Inbox
from bot.slack import fields, translate

Payload = dict[str, Any]
Next = Callable[[], Awaitable[BoltResponse]]
Middleware = Callable[[Payload, AsyncBoltContext, Next], Awaitable[BoltResponse]]


def is_question(body: Payload, bot_user_id: str | None) -> bool:
    """What the question listeners (`bot.slack.listeners.questions`) would answer."""
    if body.get("type") != "event_callback":
        return False
    event = fields.obj(body.get("event"))
    if event.get("type") == "app_mention":
        return not translate.is_from_bot(event) and not event.get("subtype") and translate.is_placed(event)
    if event.get("type") == "message":
        return translate.message_kind(event, bot_user_id=bot_user_id) is not None
    return False


def keeping(inbox: Inbox) -> Middleware:
    async def keep(body: Payload, context: AsyncBoltContext, next: Next) -> BoltResponse:
        if is_question(body, context.bot_user_id):
            # without the legacy verification token: nothing needs it again, and it is a secret
            await inbox.keep(translate.delivery_key(body), {k: v for k, v in body.items() if k != "token"})
        return await next()

    return keep


def redispatch(app: AsyncApp) -> Handler:
    async def dispatch(body: Payload) -> object:
        return await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))

    return dispatch
