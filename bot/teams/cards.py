"""Platform-neutral values out to Teams: the answer as a message with an Adaptive Card (answer,
sources as links, "Suggest a correction") and Teams' own AI feedback controls switched on; short
notices; the bodies of invoke responses. Pure functions.

The correction form lives in an `Action.ShowCard` under the answer: the answer's text, ready to be
edited, and a "Send correction" button that is an `Action.Execute` (Universal Actions: an
`adaptiveCard/action` invoke) with an `Action.Submit` fallback for clients without them (a message
activity whose `value` holds the same data). Card text is Adaptive Card markdown; the model's text is
shown as it is, the sources' titles have the characters that would break a link escaped.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from botbuilder.schema import Activity, ActivityTypes, Attachment

from bot.pipeline import Answer
from bot.teams import entities
from bot.teams.translate import CORRECTION_INPUT, CORRECTION_VERB

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
# Teams refuses messages over about 28 KB; answers are far shorter, this only guards the card.
TEXT_LIMIT = 12000
INPUT_LIMIT = 4000
MAX_SOURCES = 10
# Teams' native 👍/👎 under an AI answer. (Never together with the legacy `feedbackLoopEnabled`.)
FEEDBACK_LOOP = {"feedbackLoop": {"type": "default"}}

CORRECTION_THANKS = (
    "Thanks! Your correction was saved. Once a reviewer approves it, I'll learn from it in my next update."
)
CORRECTION_EMPTY = "Please write what the answer should have said."
CORRECTION_UNCHANGED = "This is still my original answer: edit it into the right one."
MISSING_ANSWER = "I can't find that answer any more, so it can't be corrected."
BAD_SUBMISSION = "I couldn't read that form. Please try again from the answer's card."
UNKNOWN_ACTION = "I don't know that button. Please use the ones on my latest answer."
UNKNOWN_INVOKE = "This bot does not handle that kind of invoke."
ADMIN_NEEDS_AUTH = (
    "Admin commands work only when the bot is connected to Teams with Bot Framework authentication "
    "(MICROSOFT_APP_ID); this connection has none, so I can't tell who you are."
)
GREETING = (
    "Hi! Ask me anything about how things work here: I answer from the company's documents and "
    "show where the answer came from. Tell me with 👍/👎 how I did."
)
SEARCHING = "Searching the company documents…"
USAGE = (
    "**How to ask me**: send me a message here, or @mention me in a channel or group chat; I reply "
    "with the answer and its sources.\n\n"
    "**How to teach me**: 👍 or 👎 under an answer tells me how I did (a 👎 with a comment becomes a "
    "suggested correction), and **Suggest a correction** on an answer sends a better one to a reviewer."
)

Card = dict[str, Any]


def _link_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def source_line(number: int, *, title: str, source: str, url: str | None) -> str:
    """A numbered source: a link when it has a web address, else its title and where it came from."""
    shown = _link_text(title or source)
    url = url or ""
    if url.startswith(("https://", "http://")):
        url = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        return f"{number}. [{shown}]({url})"
    return f"{number}. {shown} · _{_link_text(source)}_"


def text_block(text: str, **style: Any) -> Card:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def correction_form(answer_id: int, answer_text: str) -> Card:
    """The card shown by "Suggest a correction": the answer, editable, and the button that sends it."""
    data = {"action": CORRECTION_VERB, "answer_id": answer_id}
    return {
        "type": "AdaptiveCard",
        "body": [
            {
                "type": "Input.Text",
                "id": CORRECTION_INPUT,
                "label": "What should the answer say? A reviewer checks it before I learn from it.",
                "isMultiline": True,
                "maxLength": INPUT_LIMIT,
                "value": answer_text[:INPUT_LIMIT],
            }
        ],
        "actions": [
            {
                "type": "Action.Execute",
                "title": "Send correction",
                "verb": CORRECTION_VERB,
                "data": data,
                "fallback": {"type": "Action.Submit", "title": "Send correction", "data": data},
            }
        ],
    }


def answer_card(answer: Answer) -> Card:
    text = answer.text.strip() or "(no answer)"
    if len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT].rstrip() + "…"
    body: list[Card] = [text_block(text)]
    if answer.sources:
        body.append(text_block("Sources", weight="Bolder", size="Small", spacing="Medium"))
        shown = enumerate(answer.sources[:MAX_SOURCES], start=1)
        lines = [source_line(i, title=s.title, source=s.source, url=s.url) for i, s in shown]
        body += [text_block(line, size="Small", isSubtle=True, spacing="None") for line in lines]
    card: Card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
    }
    if answer.answer_id is not None:
        card["actions"] = [
            {
                "type": "Action.ShowCard",
                "title": "Suggest a correction",
                "card": correction_form(answer.answer_id, text),
            }
        ]
    return card


def to_reply(answer: Answer) -> Activity:
    """The answer as one message, labelled AI-generated, its sources as Teams citations (the `[n]`
    after the text place their pills). The plain `text` is what notifications and search show; the
    feedback controls appear only on recorded answers (a vote needs the answer's row)."""
    text = answer.text.strip()[:TEXT_LIMIT]
    if answer.sources:
        text = f"{text} {entities.markers(len(answer.sources))}"
    return Activity(
        type=ActivityTypes.message,
        text=text,
        attachments=[Attachment(content_type=CARD_TYPE, content=answer_card(answer))],
        entities=[entities.AIMessage(entities.citations(answer.sources))],
        channel_data=dict(FEEDBACK_LOOP) if answer.answer_id is not None else None,
    )


def notice(text: str) -> Activity:
    """A short message that is not an answer: an apology, a refusal, a thank-you."""
    return Activity(type=ActivityTypes.message, text=text)


def typing() -> Activity:
    return Activity(type=ActivityTypes.typing)


def with_image(text: str, image: Path | None) -> Activity:
    """An admin reply, with its chart inline when there is one (Teams shows data: URLs in chats)."""
    activity = notice(text)
    if image is not None and image.is_file():
        encoded = base64.b64encode(image.read_bytes()).decode()
        activity.attachments = [
            Attachment(
                content_type="image/png", content_url=f"data:image/png;base64,{encoded}", name=image.name
            )
        ]
    return activity


def card_message(text: str) -> Card:
    """Body of the invoke response to an Action.Execute: Teams shows `text` to the person."""
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


def card_error(text: str) -> Card:
    """Body of the invoke response to an Action.Execute that could not be done; the card stays as it
    was, so what the person typed is not lost."""
    return {
        "statusCode": 400,
        "type": "application/vnd.microsoft.error",
        "value": {"code": "BadRequest", "message": text},
    }
