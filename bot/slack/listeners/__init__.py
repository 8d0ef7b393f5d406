"""Bolt listeners, one module per Slack feature. Each acknowledges, translates, calls the pipeline or
the store, and replies; translation lives in `bot.slack.translate` and `bot.slack.blocks`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import Deps
from bot.slack.listeners import commands, corrections, feedback, questions, review


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    for feature in (questions, feedback, corrections, review, commands):
        feature.register(app, deps)
