"""Notes to one person: an ephemeral message in a channel, or a direct message. A note that cannot
be delivered is logged and skipped: it never fails what was already recorded."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)
NOT_OPENED = "Sorry, that form didn't open in time. Please click the button again."


async def tell(client: AsyncWebClient, *, channel: str, user: str, thread_ts: str, text: str) -> None:
    """An ephemeral note to one person; silently skipped when there is nowhere to put it."""
    if not channel:
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts or None, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s in %s: %s", user, channel, exc.response.get("error"))


async def direct_message(client: AsyncWebClient, *, user: str, text: str) -> None:
    """A message in the bot's DM with `user` (conversations.open finds or opens it)."""
    try:
        opened = await client.conversations_open(users=user)
        await client.chat_postMessage(channel=opened["channel"]["id"], text=text)
    except SlackApiError as exc:
        log.warning("could not send %s a direct message: %s", user, exc.response.get("error"))


async def open_modal(
    client: AsyncWebClient, *, trigger_id: str, view: dict[str, Any], user: str, channel: str
) -> None:
    """`views.open`; when Slack refuses (the 3-second trigger expired), the person is told to click again."""
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("could not open a modal for %s: %s", user, exc.response.get("error"))
        await tell(client, channel=channel, user=user, thread_ts="", text=NOT_OPENED)
