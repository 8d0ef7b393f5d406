"""Teams activities in, platform-neutral values out. Pure functions over botbuilder's `Activity`:
no I/O, no clock.

- `to_question(activity)`: a personal message, or a message that @mentions the bot in a channel or
  group chat, becomes a `Question` with the mention taken out;
- `to_feedback(activity)`: a `message/submitAction` invoke (Teams' own 👍/👎 controls) or a
  `messageReaction` becomes one or more `Feedback`;
- `to_correction(activity)`: the "Suggest a correction" card's Action.Execute invoke, or its
  Action.Submit fallback (a message with a `value`), becomes a `CorrectionSubmission`;
- `admin_command(text)`: whether a message is one of the admin commands.

A feedback or correction activity whose `value` is not in the shape Teams sends raises `Malformed`
(the handlers answer it with a 400); every other field is read defensively, whatever its type.

The store's columns are 128 characters wide; Teams' conversation and user ids can be longer, so they
pass through `fit`, which keeps short ids as they are and replaces long ones by a stable digest.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from typing import Any

from bot.pipeline import Question
from feedback import ids

PLATFORM = "teams"
CORRECTION_VERB = "suggestCorrection"
CORRECTION_INPUT = "correction"
REVIEW_VERB = "reviewCase"
REVIEW_DECISIONS = ("approve", "draft", "edit", "reject", "skip")
REVIEW_TEXT_INPUT = "review_text"
REVIEW_REASON_INPUT = "review_reason"
FEEDBACK_INVOKE = "message/submitAction"
CARD_INVOKE = "adaptiveCard/action"
ADMIN_COMMANDS = ("retrain", "status", "rollback", "adapters", "canary", "gaps")
# A longer message, or a question, that starts with "status" is a question for the documents.
ADMIN_MAX_WORDS = 4
ID_LIMIT = 128

_REACTIONS = {
    "like": 1,
    "thumbsup": 1,
    "1f44d_thumbsup": 1,
    "dislike": -1,
    "thumbsdown": -1,
    "1f44e_thumbsdown": -1,
}
_AT = re.compile(r"<at[^>]*>(.*?)</at>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_WIRE_ID = re.compile(r"[\x21-\x7e]{1,1024}")  # printable ASCII: ids travel in paths and headers


class Malformed(ValueError):
    """An activity's `value` is not what Teams sends for it (the message says which part)."""


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Feedback:
    """A vote on the bot's message `reply_to_id` in `conversation`, or a vote taken back."""

    user_id: str
    value: int
    source: str  # "teams_feedback" (the native controls) or "reaction"
    conversation: str
    reply_to_id: str
    withdrawn: bool = False
    comment: str | None = None


@dataclass(frozen=True)
class ReviewAction:
    """A click on the review card: a decision on one case, with the edit's text or the reason."""

    correction_id: int
    decision: str  # one of REVIEW_DECISIONS
    text: str


@dataclass(frozen=True)
class CorrectionSubmission:
    answer_id: int | None
    user_id: str
    text: str


# --- ids -------------------------------------------------------------------------------------


def fit(value: str, limit: int = ID_LIMIT) -> str:
    """`value` if it fits in `limit` characters, otherwise a stable digest of it."""
    if len(value) <= limit:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def conversation_key(activity: Any) -> str:
    """The conversation, without the `;messageid=` suffix Teams adds inside a channel thread: a
    reaction on an answer must find it whichever form its conversation id arrives in."""
    conversation_id = str(getattr(activity.conversation, "id", "") or "")
    return fit(conversation_id.split(";messageid=", 1)[0])


def thread_of(activity: Any) -> str:
    """The channel thread's root message id, or the message's own id elsewhere."""
    conversation_id = str(getattr(activity.conversation, "id", "") or "")
    _, _, root = conversation_id.partition(";messageid=")
    return fit(root or str(activity.id or ""))


def user_ids(activity: Any) -> list[str]:
    """Who sent it: the Azure AD object id first (stable across Teams and Azure), then the Teams id."""
    sender = activity.from_property
    ids = [getattr(sender, "aad_object_id", None), getattr(sender, "id", None)]
    return [str(i) for i in ids if i]


def user_id(activity: Any) -> str:
    ids = user_ids(activity)
    return fit(ids[0]) if ids else ""


def addressable(activity: Any) -> bool:
    """Whether a reply could be addressed: a conversation id (and activity id, if any) that the Bot
    Connector API can carry in its path, as every real Teams or Emulator id can."""
    conversation_id = getattr(activity.conversation, "id", None)
    if not isinstance(conversation_id, str) or not _WIRE_ID.fullmatch(conversation_id):
        return False
    return activity.id is None or (isinstance(activity.id, str) and bool(_WIRE_ID.fullmatch(activity.id)))


def delivery_key(activity: Any) -> str:
    """What a delivery and Teams' retries of it share: the activity id, within its conversation."""
    raw = f"{getattr(activity.conversation, 'id', '')}|{activity.type}|{activity.id}"
    return f"teams:{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


# --- questions -------------------------------------------------------------------------------


def is_group(activity: Any) -> bool:
    conversation = activity.conversation
    kind = getattr(conversation, "conversation_type", None)
    return bool(getattr(conversation, "is_group", False)) or kind in ("channel", "groupChat")


def mentions_bot(activity: Any) -> bool:
    bot_id = getattr(activity.recipient, "id", None)
    for entity in activity.entities or []:
        if getattr(entity, "type", None) != "mention":
            continue
        mentioned = _mapping(_mapping(getattr(entity, "additional_properties", None)).get("mentioned"))
        if bot_id and mentioned.get("id") == bot_id:
            return True
    return False


def plain_text(activity: Any) -> str:
    """The message as a person reads it, without the @mention of the bot. Other people's mentions
    stay, as "@Name"."""
    bot_id, bot_name = getattr(activity.recipient, "id", None), getattr(activity.recipient, "name", None)
    bot_mentions = set()
    for entity in activity.entities or []:
        props = _mapping(getattr(entity, "additional_properties", None))
        if (
            getattr(entity, "type", None) == "mention"
            and _mapping(props.get("mentioned")).get("id") == bot_id
        ):
            bot_mentions.add(_AT.sub(r"\1", str(props.get("text") or "")).strip())
    if bot_name:
        bot_mentions.add(str(bot_name))

    def mention(match: re.Match[str]) -> str:
        name = _TAG.sub("", match.group(1)).strip()
        return "" if name in bot_mentions else f"@{name}"

    text = _AT.sub(mention, str(activity.text or ""))
    text = _TAG.sub(" ", text.replace("<br>", "\n").replace("<br/>", "\n"))
    text = html.unescape(text).replace("\xa0", " ")
    return re.sub(r"[ \t]+", " ", text).strip()


def is_question(activity: Any) -> bool:
    """Every personal message; in a channel or group chat, only those that @mention the bot (Teams
    sends the bot only those, unless the app has resource-specific consent to read them all)."""
    if activity.type != "message" or activity.value:
        return False
    return not is_group(activity) or mentions_bot(activity)


def tenant_of(activity: Any) -> str:
    """The Microsoft 365 tenant. (botbuilder's schema spells the field `tenantID`, Teams `tenantId`,
    so it is usually among the conversation's additional properties.)"""
    conversation = activity.conversation
    extra = _mapping(getattr(conversation, "additional_properties", None))
    tenant = (
        getattr(conversation, "tenant_id", None)
        or extra.get("tenantId")
        or _mapping(_mapping(activity.channel_data).get("tenant")).get("id")
    )
    return str(tenant or "")


def to_question(activity: Any) -> Question:
    tenant = tenant_of(activity)
    return Question(
        text=plain_text(activity),
        platform=PLATFORM,
        user_id=user_id(activity),
        workspace=fit(str(tenant), 64),
        channel=conversation_key(activity),
        thread=thread_of(activity),
    )


def admin_command(text: str) -> str | None:
    """The command a message asks for (`retrain`, `status`, `rollback`), or None for a question."""
    words = text.strip().lstrip("/").split()
    if not words or words[0].lower() not in ADMIN_COMMANDS:
        return None
    if len(words) > ADMIN_MAX_WORDS or "?" in text:
        return None
    return words[0].lower()


# --- feedback --------------------------------------------------------------------------------


def reaction_value(kind: str) -> int | None:
    """+1 for 👍, -1 for 👎, None for every other reaction (hearts and laughs are not votes)."""
    return _REACTIONS.get(kind.lower())


def feedback_text(raw: object) -> str:
    """`value.actionValue.feedback` is a JSON string holding `feedbackText`; tolerate an object, or
    plain text, rather than lose what the person wrote."""
    if isinstance(raw, dict):
        return str(raw.get("feedbackText") or "").strip()
    if not isinstance(raw, str) or not raw.strip():
        return ""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw.strip()
    if isinstance(parsed, dict):
        return str(parsed.get("feedbackText") or "").strip()
    return raw.strip()


def to_feedback(activity: Any) -> list[Feedback]:
    """The votes in a feedback invoke or a reaction activity; empty when there are none. `Malformed`
    for a feedback invoke whose value is not Teams' `{"actionValue": {"reaction": ..., ...}}`."""
    feedback_invoke = activity.type == "invoke" and activity.name == FEEDBACK_INVOKE
    action = _feedback_action(activity) if feedback_invoke else {}
    who = user_id(activity)
    conversation, reply_to_id = conversation_key(activity), str(activity.reply_to_id or "")
    if not who or not reply_to_id:
        return []
    if feedback_invoke:
        vote = {"like": 1, "dislike": -1}.get(action["reaction"])
        if vote is None:
            return []
        comment = feedback_text(action.get("feedback")) or None
        return [Feedback(who, vote, "teams_feedback", conversation, reply_to_id, comment=comment)]
    if activity.type == "messageReaction":
        votes = []
        for withdrawn, reactions in ((False, activity.reactions_added), (True, activity.reactions_removed)):
            for reaction in reactions or []:
                vote = reaction_value(str(getattr(reaction, "type", None) or ""))
                if vote is not None:
                    votes.append(Feedback(who, vote, "reaction", conversation, reply_to_id, withdrawn))
        return votes
    return []


def _feedback_action(activity: Any) -> dict[str, Any]:
    if not isinstance(activity.value, dict):
        raise Malformed("a feedback invoke's value is not an object")
    action = activity.value.get("actionValue")
    if not isinstance(action, dict) or not isinstance(action.get("reaction"), str):
        raise Malformed("a feedback invoke's actionValue is not an object with a reaction")
    return action


# --- corrections -----------------------------------------------------------------------------


def _correction_data(activity: Any) -> dict[str, Any] | None:
    """The form's data, if this is a correction; `Malformed` for a card action that is no object."""
    value = activity.value
    if activity.type == "invoke" and activity.name == CARD_INVOKE:
        action = value.get("action") if isinstance(value, dict) else None
        if not isinstance(action, dict):
            raise Malformed("an adaptiveCard/action invoke's value has no action object")
        if action.get("verb") != CORRECTION_VERB:
            return None
        return _mapping(action.get("data"))
    if activity.type == "message" and isinstance(value, dict) and value.get("action") == CORRECTION_VERB:
        return value
    return None


def is_correction(activity: Any) -> bool:
    return _correction_data(activity) is not None


def answer_id_of(raw: object) -> int | None:
    """The answer id a card carries (a number, or its ASCII digits as a string), or None when `raw`
    cannot be the id of an answer: not a whole number, not positive, or past what the store holds."""
    return ids.parse(raw)


def to_correction(activity: Any) -> CorrectionSubmission | None:
    """`Malformed` when the form's text is not text."""
    data = _correction_data(activity)
    if data is None:
        return None
    text = data.get(CORRECTION_INPUT)
    if text is not None and not isinstance(text, str):
        raise Malformed("a correction's text is not a string")
    return CorrectionSubmission(
        answer_id=answer_id_of(data.get("answer_id")),
        user_id=user_id(activity),
        text=(text or "").strip(),
    )


# --- reviews ---------------------------------------------------------------------------------


def is_review(activity: Any) -> bool:
    value = activity.value if activity.type == "invoke" and activity.name == CARD_INVOKE else None
    action = value.get("action") if isinstance(value, dict) else None
    return isinstance(action, dict) and action.get("verb") == REVIEW_VERB


def to_review(activity: Any) -> ReviewAction:
    """The review card's click; `Malformed` when its data is not what the card sends."""
    data = _mapping(_mapping(activity.value).get("action")).get("data")
    if not isinstance(data, dict):
        raise Malformed("a review action carries no data object")
    correction_id = ids.parse(data.get("correction_id"))
    if correction_id is None:
        raise Malformed("a review action names no case")
    decision = data.get("decision")
    if decision not in REVIEW_DECISIONS:
        raise Malformed("a review action's decision is not one the card offers")
    text = data.get(REVIEW_TEXT_INPUT if decision == "edit" else REVIEW_REASON_INPUT)
    if text is not None and not isinstance(text, str):
        raise Malformed("a review action's text is not a string")
    return ReviewAction(correction_id, decision, (text or "").strip())
