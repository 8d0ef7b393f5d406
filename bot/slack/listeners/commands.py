"""The `/chatbot` slash command: `help` (or nothing) explains how to use the bot; `retrain`, `status`,
`rollback` and `adapters` are admin commands (`bot.admin`).

Slack wants the command acknowledged within 3 seconds. Help and refusals are the acknowledgement
itself; an admin command is acknowledged at once and answered through the command's
`response_url`, visible to the caller only.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.admin import COMMANDS as ADMIN_COMMANDS
from bot.admin import HELP as ADMIN_HELP
from bot.slack import blocks
from bot.slack.deps import Deps

COMMAND = "/chatbot"
log = logging.getLogger(__name__)

WORKING = "Working on `/chatbot {command}`…"
FAILED = (
    "Sorry, `/chatbot {command}` did not go through. Try again in a minute; the bot's log has the details."
)
NO_ADMIN = (
    "Admin commands are not set up on this bot. Whoever runs it can turn them on by setting ADMIN_USERS."
)


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command(COMMAND)
    async def on_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        text = command.get("text", "")
        words = text.strip().split()
        asked = words[0].lower() if words else ""
        user = command.get("user_id", "")
        admin = deps.admin
        if asked not in ADMIN_COMMANDS or asked == "help":
            # Answered in the acknowledgement itself: Slack shows it to the caller only.
            usage = blocks.usage(text)
            if admin is not None and admin.is_admin(user):
                usage += f"\n*For admins*\n{ADMIN_HELP.removeprefix('Admin commands:').strip()}"
            await ack(text=usage, response_type="ephemeral")
            return
        if admin is None:
            log.warning("/chatbot %s from %s: admin commands are not configured", asked, user)
            await ack(text=NO_ADMIN, response_type="ephemeral")
            return
        if not admin.is_admin(user):
            reply = await admin.handle(user, text, platform="slack", channel=command.get("channel_id", ""))
            await ack(text=reply.text, response_type="ephemeral")
            return
        await ack(text=WORKING.format(command=asked), response_type="ephemeral")
        try:
            reply = await admin.handle(user, text)
        except Exception:
            log.exception("/chatbot %s from %s failed", asked, user)
            await respond(text=FAILED.format(command=asked), response_type="ephemeral")
            return
        await respond(text=reply.text, response_type="ephemeral")
