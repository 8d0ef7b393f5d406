"""Sending to Teams: in the turn that asked, or later, once the request that asked has been
answered (Teams waits at most 15 s for that, and an answer can take longer).

`Later` holds the conversation reference of the activity being answered and runs work in a proactive
turn (`continue_conversation`, in the bot's own name). botbuilder addresses a proactive turn's sends
to the continuation event it made up, so `Replier` addresses each reply itself: to the activity that
asked, as a reply to it. `reference_of` keeps such a reference as JSON, for a turn much later (how a
correction's author is told what reviewers decided).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from botbuilder.core import BotAdapter, InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from bot.teams import cards

log = logging.getLogger(__name__)
# Teams shows "typing…" for about 3 seconds after each typing activity.
TYPING_EVERY = 2.5


class Replier:
    def __init__(self, context: TurnContext, reference: ConversationReference) -> None:
        self.context = context
        self.reference = reference

    async def send(self, activity: Activity) -> str | None:
        """Send one activity as a reply; the id Teams gave it."""
        TurnContext.apply_conversation_reference(activity, self.reference)
        responses = await self.context.adapter.send_activities(self.context, [activity])
        return responses[0].id if responses and responses[0] is not None else None

    async def typing_once(self) -> None:
        try:
            await self.send(cards.typing())
        except Exception as exc:  # a lost typing indicator must never stop the answer
            log.debug("no typing indicator: %s", exc)

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """Keep "typing…" showing until the block ends."""

        async def keep() -> None:
            while True:
                await self.typing_once()
                await asyncio.sleep(TYPING_EVERY)

        task = asyncio.create_task(keep())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Later:
    """Replies in `reference`'s conversation in a turn of their own (a question taken over from a
    replica that died has no request of its own to reply in)."""

    def __init__(self, adapter: BotAdapter, reference: ConversationReference, app_id: str) -> None:
        self.adapter, self.reference, self.app_id = adapter, reference, app_id

    @classmethod
    def of(cls, context: TurnContext, app_id: str) -> Later:
        """Replies to the current turn's activity, after its request has been answered."""
        return cls(context.adapter, TurnContext.get_conversation_reference(context.activity), app_id)

    async def run(self, work: Callable[[Replier], Awaitable[None]]) -> None:
        async def turn(context: TurnContext) -> None:
            await work(Replier(context, self.reference))

        await self.adapter.continue_conversation(self.reference, turn, bot_app_id=self.app_id)


def reference_of(activity: Activity) -> dict[str, Any]:
    """Where `activity` came from, as JSON to store: enough for a proactive turn there later."""
    return dict(TurnContext.get_conversation_reference(activity).serialize())


def reference_from(stored: dict[str, Any]) -> ConversationReference:
    return ConversationReference.deserialize(stored)


def now(context: TurnContext) -> Replier:
    """Replies within the current turn."""
    return Replier(context, TurnContext.get_conversation_reference(context.activity))


async def invoke_response(context: TurnContext, body: object, status: int = 200) -> None:
    """What the HTTP response to an invoke carries. (`bot.teams.endpoint` writes it: botbuilder
    4.17's own `CloudAdapter.process` answers 500 to a dict body such as the `{}` Teams wants.)"""
    await context.send_activity(
        Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=status, body=body))
    )
