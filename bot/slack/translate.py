"""Slack payloads in, platform-neutral values out. Pure functions: no I/O, no clock.

- `to_question(event)`: a message or mention becomes a `Question`, Slack's markup turned into plain text;
- `to_turns(messages)`: a thread from `conversations.replies` becomes the history the pipeline reads;
- `to_feedback(...)`: a reaction or a feedback-button click becomes a `Feedback`;
- `to_correction(view)`: a submitted correction modal, and `correction_error` says what is wrong with it.

Payloads are signed by Slack, but a field may still be missing or of another type (a modal from an
older version of the bot, a hand-made request): such a payload translates to None, never an exception.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from bot.pipeline import Question
from bot.prompts import Turn
from bot.slack import fields

Payload = dict[str, Any]

# Shared with blocks.py, which puts these ids on the controls that this module reads back.
FEEDBACK_ACTION = "answer_feedback"
CORRECTION_ACTION = "suggest_correction"
CORRECTION_VIEW = "correction"
CORRECTION_BLOCK = "correction"
CORRECTION_INPUT = "text"
ANSWER_METADATA = "chatbot_answer"
UP, DOWN = "up", "down"

_REACTIONS = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^|>]*)(?:\|([^>]*))?>")

MessageKind = Literal["direct", "follow_up"]


@dataclass(frozen=True)
class Feedback:
    """A vote on one of the bot's answers, or a vote taken back.

    Buttons carry the answer id; a reaction names the message instead (channel + ts)."""

    user_id: str
    value: int
    source: str  # "button" or "reaction"
    withdrawn: bool = False
    answer_id: int | None = None
    channel: str = ""
    message_ts: str = ""
    on_bot_message: bool = False


@dataclass(frozen=True)
class CorrectionRequest:
    """A click on "Suggest a correction": which answer (None when the button's value cannot name
    one), who, and the trigger that opens the modal."""

    answer_id: int | None
    user_id: str
    channel: str
    trigger_id: str


@dataclass(frozen=True)
class CorrectionSubmission:
    answer_id: int
    user_id: str
    text: str
    channel: str
    thread_ts: str
    original_digest: str


# --- questions -------------------------------------------------------------------------------


def plain_text(text: str, *, bot_user_id: str | None = None) -> str:
    """Slack mrkdwn as a person would read it, without the mention of the bot itself."""

    def user(match: re.Match[str]) -> str:
        if match.group(1) == bot_user_id:
            return ""
        return f"@{match.group(2) or match.group(1)}"

    text = _USER.sub(user, text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(2) or m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]+", " ", text).strip()


def message_kind(event: Payload, *, bot_user_id: str | None) -> MessageKind | None:
    """Which `message` events the bot answers: every direct message, and replies in channel threads
    (answered only where the bot took part). Edits, joins and other subtypes, bots' messages, and
    messages that mention the bot (the `app_mention` event answers those) are not questions."""
    if is_from_bot(event) or event.get("subtype") or not event.get("user") or not is_placed(event):
        return None
    if event.get("channel_type") == "im":
        return "direct"
    thread_ts = event.get("thread_ts")
    if not thread_ts or thread_ts == event.get("ts"):
        return None
    if bot_user_id and f"<@{bot_user_id}" in event.get("text", ""):
        return None
    return "follow_up"


def is_placed(event: Payload) -> bool:
    """Whether the event says where it happened, so there is a thread to answer in."""
    return bool(fields.text(event.get("channel")) and fields.text(event.get("ts")))


def is_from_bot(event: Payload) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile"))


def delivery_key(body: Payload) -> str:
    """The key a delivery and all of Slack's retries of it share."""
    event = fields.obj(body.get("event"))
    return f"slack:{fields.text(body.get('event_id')) or fields.text(event.get('event_ts'))}"


def thread_of(event: Payload) -> str:
    """The thread the answer goes in: the one asked in, or a new one under the question."""
    return str(event.get("thread_ts") or event["ts"])


def to_question(event: Payload, *, bot_user_id: str | None, team_id: str = "") -> Question:
    return Question(
        text=plain_text(event.get("text", ""), bot_user_id=bot_user_id),
        platform="slack",
        user_id=event.get("user", ""),
        workspace=team_id or event.get("team", ""),
        channel=event["channel"],
        thread=thread_of(event),
    )


def is_bot_message(message: Payload, *, bot_user_id: str | None, bot_id: str | None) -> bool:
    return bool(
        (bot_user_id and message.get("user") == bot_user_id) or (bot_id and message.get("bot_id") == bot_id)
    )


def is_answer(message: Payload) -> bool:
    return (message.get("metadata") or {}).get("event_type") == ANSWER_METADATA


def to_turns(
    messages: list[Payload], *, bot_user_id: str | None, bot_id: str | None, before_ts: str
) -> list[Turn]:
    """The thread before `before_ts` as conversation turns: people's messages and the bot's answers.
    Other bots, the bot's notices (greetings, apologies) and edits are left out."""
    turns = []
    for message in sorted(messages, key=lambda m: float(m.get("ts", 0))):
        if float(message.get("ts", 0)) >= float(before_ts) or message.get("subtype"):
            continue
        if is_bot_message(message, bot_user_id=bot_user_id, bot_id=bot_id):
            if is_answer(message):
                turns.append(Turn("assistant", plain_text(message.get("text", ""))))
        elif not is_from_bot(message) and message.get("user"):
            text = plain_text(message.get("text", ""), bot_user_id=bot_user_id)
            if text:
                turns.append(Turn("user", text))
    return turns


# --- feedback --------------------------------------------------------------------------------


def reaction_value(name: str) -> int | None:
    """+1 / -1 for thumbs up / down in any skin tone (`+1::skin-tone-3`), None for anything else."""
    return _REACTIONS.get(name.split("::", 1)[0])


def to_feedback(payload: Payload, *, bot_user_id: str | None = None) -> Feedback | None:
    """A `reaction_added`/`reaction_removed` event or a `block_actions` payload from the feedback
    buttons, as a vote; None when it is not one (another emoji, another button, a reaction on a file)."""
    if payload.get("type") in ("reaction_added", "reaction_removed"):
        return _reaction_feedback(payload, bot_user_id)
    if payload.get("type") == "block_actions":
        return _button_feedback(payload)
    return None


def _reaction_feedback(event: Payload, bot_user_id: str | None) -> Feedback | None:
    item = fields.obj(event.get("item"))
    value = reaction_value(event.get("reaction", ""))
    if value is None or item.get("type") != "message" or not event.get("user"):
        return None
    return Feedback(
        user_id=event["user"],
        value=value,
        source="reaction",
        withdrawn=event["type"] == "reaction_removed",
        channel=fields.text(item.get("channel")),
        message_ts=fields.text(item.get("ts")),
        on_bot_message=bool(bot_user_id) and event.get("item_user") == bot_user_id,
    )


def _button_feedback(body: Payload) -> Feedback | None:
    user = fields.user_id(body)
    for action in fields.items(body.get("actions")):
        if action.get("action_id") != FEEDBACK_ACTION:
            continue
        direction, _, number = fields.text(action.get("value")).partition(":")
        answer_id = fields.digits_id(number)
        if direction not in (UP, DOWN) or answer_id is None or not user:
            return None
        return Feedback(
            user_id=user,
            value=1 if direction == UP else -1,
            source="button",
            answer_id=answer_id,
            channel=fields.text(fields.obj(body.get("channel")).get("id")),
            message_ts=fields.text(fields.obj(body.get("container")).get("message_ts")),
        )
    return None


def correction_request(body: Payload) -> CorrectionRequest | None:
    """A clicked "Suggest a correction" button; None for anything else."""
    user = fields.user_id(body)
    for action in fields.items(body.get("actions")):
        if action.get("action_id") == CORRECTION_ACTION and user:
            return CorrectionRequest(
                answer_id=fields.digits_id(action.get("value")),
                user_id=user,
                channel=fields.text(fields.obj(body.get("channel")).get("id")),
                trigger_id=fields.text(body.get("trigger_id")),
            )
    return None


# --- corrections -----------------------------------------------------------------------------


def digest(text: str) -> str:
    """A short fingerprint of an answer, to tell an edited correction from an untouched one."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def to_correction(body: Payload) -> CorrectionSubmission | None:
    """A submitted correction modal; None when its metadata does not name an answer (`"not json"`,
    `{}`, `{"answer_id": "abc"}`) or nobody submitted it: there is nothing to store."""
    view = fields.obj(body.get("view"))
    meta = fields.metadata(view.get("private_metadata"))
    answer_id = fields.row_id(meta.get("answer_id"))
    user = fields.user_id(body)
    if answer_id is None or not user:
        return None
    text = fields.input_value(view, CORRECTION_BLOCK, CORRECTION_INPUT)
    return CorrectionSubmission(
        answer_id=answer_id,
        user_id=user,
        text=text.strip(),
        channel=fields.text(meta.get("channel")),
        thread_ts=fields.text(meta.get("thread_ts")),
        original_digest=fields.text(meta.get("digest")),
    )


def correction_error(submission: CorrectionSubmission) -> str | None:
    """What to show under the text box, or None when the correction can be stored."""
    if not submission.text:
        return "Please write what the answer should have said."
    if submission.original_digest and digest(submission.text) == submission.original_digest:
        return "This is still my original answer: edit it into the right one."
    return None
