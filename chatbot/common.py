"""What every `chatbot` subcommand shares: settings loading and the errors shown as one line."""

from __future__ import annotations

import click
from pydantic import ValidationError

from bot.errors import BotError
from bot.knowledge.errors import KnowledgeError
from chatbot.settings import Settings, SettingsError, get_settings
from feedback.errors import FeedbackError
from model_server.errors import ModelServerError
from model_server.launch import LaunchError
from model_server.prepare import PrepareError
from retrain.errors import RetrainError

# Errors whose message is written for a person; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    FeedbackError,
    ModelServerError,
    PrepareError,
    LaunchError,
    KnowledgeError,
    SettingsError,
    RetrainError,
)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"Settings are not usable: {problems}") from None


def user_message(exc: Exception) -> str:
    return exc.user_message if isinstance(exc, BotError) else str(exc)
