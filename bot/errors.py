"""Errors the bot shows to the person who asked. `user_message` is what they read; logs keep the rest.

BotError
├── EmptyQuestion
├── AnswerUnavailable   the model server is down or failing; the question was still recorded
│   └── AnswerDelayed   it took longer than the pipeline's answer_timeout
└── NotAReviewer        someone who is not a reviewer tried to decide on a correction

SettingsError (not a BotError: it stops the process, no asker reads it) names a setting the bot
cannot start with and says what to do; `chatbot.settings` raises the same class.
"""

from __future__ import annotations


class BotError(Exception):
    user_message = "Something went wrong on my side. Please try again in a minute."


class EmptyQuestion(BotError):
    user_message = "It looks like the question was empty. What would you like to know?"


class AnswerUnavailable(BotError):
    user_message = (
        "Sorry, I can't reach my language model right now, so I can't answer. "
        "Your question was saved; please try again in a few minutes."
    )

    def __init__(self, reason: str, question_id: int | None = None) -> None:
        super().__init__(reason)
        self.question_id = question_id


class AnswerDelayed(AnswerUnavailable):
    user_message = (
        "Sorry, my language model is taking too long to answer right now. "
        "Your question was saved; please try again in a few minutes."
    )


class NotAReviewer(BotError):
    user_message = (
        "Only reviewers can approve, edit or reject corrections, so nothing was changed. "
        "If you should be one, ask an admin to add you to REVIEWERS."
    )

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id} is not a reviewer")
        self.user_id = user_id


class SettingsError(ValueError):
    """A setting is missing or unusable; the message names it and says what to do."""
