"""The shape Bolt takes for granted in a payload, checked before Bolt sees it.

Bolt's matchers, context and log lines index into a payload without looking (`body["actions"][0]
["action_id"]`, `body["view"]["callback_id"]`, `view.get(...)`), so a signed body with one field
of the wrong type was a 500. Slack's own payloads always have these shapes; anything else is
refused with a 400. Only the fields Bolt reads are checked: listeners read the rest tolerantly.
"""

from __future__ import annotations

from typing import Any

# Fields that are objects when present (some may also be an id string, see _ID_OR_OBJECT).
_OBJECTS = (
    "event",
    "view",
    "container",
    "message",
    "previous_message",
    "item",
    "assistant_thread",
    "state",
    "workflow_step",
    "bot_profile",
    "function_data",
)
_ID_OR_OBJECT = ("user", "team", "enterprise", "channel")  # an id in events, an object elsewhere
_STRINGS = (
    "id",
    "type",
    "subtype",
    "callback_id",
    "command",
    "text",
    "channel_type",
    "thread_ts",
    "ts",
    "event_ts",
    "tab",
    "bot_id",
    "user_id",
    "team_id",
    "channel_id",
    "enterprise_id",
    "user_team",
    "response_url",
    "trigger_id",
    "function_execution_id",
)
MAX_DEPTH = 3
# Where Bolt looks for one of the kinds of payload: the field it reads, and what it must be.
_REQUIRED = {
    "event_callback": "event",
    "block_actions": "actions",
    "view_submission": "view",
    "view_closed": "view",
}


def problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with the payload's shape, in a few words of ours; None when Bolt can read it."""
    kind = payload.get("type")
    required = _REQUIRED.get(kind) if isinstance(kind, str) else None
    if required is not None and required not in payload:
        return f"{kind} without {required}"
    for key in ("authorizations", "response_urls"):
        listed = payload.get(key)
        if listed is not None and not _objects(listed):
            return f"{key} is not a list of objects"
        for item in listed or ():
            if found := _problem(item, depth=1):
                return f"{key}: {found}"
    actions = payload.get("actions")
    if actions is not None and not (_objects(actions) and actions):
        return "actions is not a list of objects"
    for action in actions or ():
        if not all(isinstance(action.get(key, ""), str) for key in ("action_id", "block_id", "type")):
            return "an action's id is not a string"
    return _problem(payload, depth=0)


def _problem(value: dict[str, Any], *, depth: int) -> str | None:
    """The fields Bolt reads, here and in the objects below (Bolt looks as deep as event.item)."""
    for key in _STRINGS:
        if value.get(key) is not None and not isinstance(value[key], str):
            return f"{key} is not a string"
    for key in _ID_OR_OBJECT:
        if value.get(key) is not None and not isinstance(value[key], str | dict):
            return f"{key} is neither an id nor an object"
    for key in _OBJECTS:
        if value.get(key) is not None and not isinstance(value[key], dict):
            return f"{key} is not an object"
    if depth < MAX_DEPTH:
        for key in (*_OBJECTS, *_ID_OR_OBJECT):
            inner = value.get(key)
            if isinstance(inner, dict) and (found := _problem(inner, depth=depth + 1)):
                return f"{key}.{found}"
    return None


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)
