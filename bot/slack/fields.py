"""Reading a field of a Slack payload without trusting its type: a missing or mistyped field reads
as empty, so a translator answers "not one of ours" (None) instead of raising before the ack."""

from __future__ import annotations

import json
from typing import Any

from feedback import ids

Payload = dict[str, Any]


def obj(value: Any) -> Payload:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def items(value: Any) -> list[Payload]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def row_id(value: Any) -> int | None:
    """A positive integer id (as we wrote it into metadata); None for "abc", true, 1.5 or -1."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def digits_id(value: Any) -> int | None:
    """An id written as ASCII digits in a button's value ("42"); None for anything else, and for a
    number no row can have (int() would raise on 5000 digits and read "١" as 1)."""
    return ids.parse(value) if isinstance(value, str) else None


def metadata(value: Any) -> Payload:
    """A view's `private_metadata` (JSON we wrote); {} when it is not a JSON object."""
    try:
        return obj(json.loads(value)) if isinstance(value, str) else {}
    except ValueError:
        return {}


def user_id(body: Payload) -> str:
    """Who clicked or submitted: `user.id`, or "" when it is missing."""
    return text(obj(body.get("user")).get("id"))


def input_value(view: Payload, block: str, action: str) -> str:
    """A submitted view's plain-text input, from `state.values[block][action].value`."""
    values = obj(obj(view.get("state")).get("values"))
    return text(obj(obj(values.get(block)).get(action)).get("value"))
