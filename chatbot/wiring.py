"""Builds the long-lived collaborators (database, model client, index) from settings."""

from __future__ import annotations

from chatbot.settings import Settings
from feedback.db import Database


def open_database(settings: Settings) -> Database:
    return Database(settings.sqlalchemy_url)
