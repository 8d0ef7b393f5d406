"""The `/chatbot` slash command. For now it explains how to use the bot; the retrain issue adds the
admin subcommands here."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.slack import blocks
from bot.slack.deps import Deps

COMMAND = "/chatbot"


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command(COMMAND)
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        # Answered in the acknowledgement itself: Slack shows it to the caller only.
        await ack(text=blocks.usage(command.get("text", "")), response_type="ephemeral")
