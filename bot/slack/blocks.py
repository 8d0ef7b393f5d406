"""Platform-neutral values out to Slack: the answer as Block Kit messages, the invitation to correct
it, the correction modal, the `/chatbot` usage text. Pure functions.

The model writes Markdown, so an answer goes out in Slack's `markdown` block, which renders it as
written (lists, bold, links). Its limit shapes `to_reply`: 12,000 characters of markdown a message, so
a longer answer is cut at a line or word break into several messages; the sources and the feedback
controls go on the last one. Text from people and from the model is escaped (`&`, `<`, `>`), so it
can neither break the markup nor ping `@channel`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import ContextActionsBlock, FeedbackButtonObject, FeedbackButtonsElement

from bot.pipeline import Answer, Source
from bot.slack.translate import (
    ANSWER_METADATA,
    CORRECTION_ACTION,
    CORRECTION_BLOCK,
    CORRECTION_INPUT,
    CORRECTION_VIEW,
    DOWN,
    FEEDBACK_ACTION,
    UP,
    digest,
)

SECTION_LIMIT = 3000
MARKDOWN_LIMIT = 12_000  # characters of markdown in one message, all its markdown blocks together
MAX_SOURCES = 10  # a context block holds at most 10 elements
INPUT_LIMIT = 3000  # plain_text_input's max_length
THINKING = "is thinking…"
# Shown in turn under the status while the answer is on its way (Slack shows up to 10, 50 characters each).
LOADING = ["Searching the company documents…", "Reading what I found…", "Writing the answer…"]
MAX_PROMPTS = 4  # suggested prompts Slack shows
PROMPTS_TITLE = "Often asked"
TITLE_LIMIT = 60
GREETING = (
    "Hi! Ask me anything about how things work here: I answer from the company's documents and "
    "show where the answer came from. Tell me with 👍/👎 how I did."
)
CORRECTION_THANKS = (
    "Thanks! Your correction was saved. Once a reviewer approves it, I'll learn from it in my next update."
)
CORRECTION_FAILED = "Sorry, your correction could not be saved. Please try again in a minute."
MISSING_ANSWER = "I can't find that answer any more, so it can't be corrected."
STALE_MODAL = (
    "Sorry, this form can't be sent any more. "
    "Close it and click “Suggest a correction” under the answer again."
)

Block = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """The arguments of one `chat.postMessage`."""

    text: str
    blocks: list[Block]
    metadata: dict[str, Any] | None = field(default=None)

    def as_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": self.text, "blocks": self.blocks, "unfurl_links": False}
        if self.metadata is not None:
            kwargs["metadata"] = self.metadata
        return kwargs


def escape(text: str) -> str:
    """Slack's three control characters, as its docs ask: nothing else is entity-encoded."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of `text` whose escaped form fits in `limit`, cut at a line break or a space where
    there is one in the second half of the piece."""
    pieces = []
    rest = text.strip()
    while rest:
        cut = _fitting_prefix(rest, limit)
        if cut < len(rest):
            brk = max(rest.rfind("\n", 0, cut), rest.rfind(" ", 0, cut))
            if brk > cut // 2:
                cut = brk
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    return pieces


def _fitting_prefix(text: str, limit: int) -> int:
    size = 0
    for i, char in enumerate(text):
        size += len(escape(char))
        if size > limit:
            return max(i, 1)
    return len(text)


def _source_line(number: int, source: Source) -> str:
    title = escape(source.title or source.source)
    url = source.url or ""
    if url.startswith(("https://", "http://")):
        link = escape(url).replace("|", "%7C")
        return f"{number}. <{link}|{title}>"
    return f"{number}. {title} · _{escape(source.source)}_"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _sources_block(sources: list[Source]) -> Block:
    lines = ["*Sources*"] + [_source_line(i, s) for i, s in enumerate(sources, start=1)]
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in lines[:MAX_SOURCES]]}


def _correction_actions(answer_id: int) -> Block:
    button = {
        "type": "button",
        "action_id": CORRECTION_ACTION,
        "text": {"type": "plain_text", "text": "Suggest a correction"},
        "value": str(answer_id),
    }
    return {"type": "actions", "elements": [button]}


def _feedback_block(answer_id: int) -> Block:
    """Slack's native AI feedback control: 👍/👎 in a `context_actions` block."""
    feedback = FeedbackButtonsElement(
        action_id=FEEDBACK_ACTION,
        positive_button=FeedbackButtonObject(
            text="👍", accessibility_label="This answer was helpful", value=f"{UP}:{answer_id}"
        ),
        negative_button=FeedbackButtonObject(
            text="👎", accessibility_label="This answer was not helpful", value=f"{DOWN}:{answer_id}"
        ),
    )
    return ContextActionsBlock(elements=[feedback]).to_dict()


def footer(answer: Answer) -> tuple[list[Block], dict[str, Any] | None]:
    """The blocks under an answer (its sources; the correction button and feedback controls for an
    answer that was recorded: they carry its id, and a vote needs its row) and the message metadata
    that marks it as this bot's answer."""
    tail: list[Block] = []
    if answer.sources:
        tail.append(_sources_block(answer.sources))
    if answer.answer_id is None:
        return tail, None
    tail += [_correction_actions(answer.answer_id), _feedback_block(answer.answer_id)]
    return tail, {"event_type": ANSWER_METADATA, "event_payload": {"answer_id": answer.answer_id}}


def to_reply(answer: Answer) -> list[Reply]:
    """The answer as one or more messages for its thread, the footer on the last."""
    pieces = split_text(answer.text, MARKDOWN_LIMIT) or ["(no answer)"]
    tail, metadata = footer(answer)
    replies = []
    for n, piece in enumerate(pieces):
        blocks: list[Block] = [{"type": "markdown", "text": escape(piece)}]
        if n == len(pieces) - 1:
            blocks += tail
        replies.append(Reply(text=escape(piece), blocks=blocks, metadata=metadata))
    return replies


def prompts(questions: list[str]) -> list[dict[str, str]]:
    """Suggested prompts: a short title to click, the whole question as the message sent."""
    return [{"title": title(q), "message": q} for q in questions[:MAX_PROMPTS]]


def title(question: str) -> str:
    """A question short enough for a thread title or a prompt's label, cut at a word."""
    text = " ".join(question.split())
    if len(text) <= TITLE_LIMIT:
        return text
    cut = text.rfind(" ", 0, TITLE_LIMIT - 1)
    return text[: cut if cut > TITLE_LIMIT // 2 else TITLE_LIMIT - 1].rstrip(" ,;:") + "…"


def notice(text: str) -> Reply:
    """A short message in the thread that is not an answer: an apology, a greeting."""
    return Reply(text=escape(text), blocks=[_section(escape(text))])


def correction_invite(answer_id: int) -> Reply:
    """Shown (ephemerally) to someone who gave an answer a 👎."""
    text = (
        "Sorry that answer missed the mark. If you know the right one, suggest a correction: "
        "a reviewer checks it, and I learn from it."
    )
    blocks = [_section(text), _correction_actions(answer_id)]
    return Reply(text=text, blocks=blocks)


def correction_modal(*, answer_id: int, answer_text: str, channel: str, thread_ts: str) -> dict[str, Any]:
    """The `views.open` view: the bot's answer, ready to be edited into the right one."""
    meta = {"answer_id": answer_id, "channel": channel, "thread_ts": thread_ts, "digest": digest(answer_text)}
    return {
        "type": "modal",
        "callback_id": CORRECTION_VIEW,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": "Suggest a correction"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": CORRECTION_BLOCK,
                "label": {"type": "plain_text", "text": "What should the answer say?"},
                "hint": {
                    "type": "plain_text",
                    "text": "Edit my answer into the right one. A reviewer checks it before I learn from it.",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": CORRECTION_INPUT,
                    "multiline": True,
                    "max_length": INPUT_LIMIT,
                    "initial_value": answer_text[:INPUT_LIMIT],
                },
            }
        ],
    }


def usage(text: str = "") -> str:
    """The reply to `/chatbot`: what the bot does and how to use it."""
    asked = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    unknown = f"I don't know the command `{escape(asked)}`.\n\n" if asked and asked != "help" else ""
    return (
        f"{unknown}*How to ask me*\n"
        "• Mention me in a channel (`@chatbot how many days of leave do I get?`) or send me a "
        "direct message; I answer in the thread, with my sources.\n"
        "• Reply in that thread to ask a follow-up: I read the thread first.\n"
        "*How to teach me*\n"
        "• 👍 or 👎 on an answer (the buttons, or a reaction) tells me how I did.\n"
        "• *Suggest a correction* under an answer sends a better answer to a reviewer; approved corrections "
        "go into my next training run."
    )
