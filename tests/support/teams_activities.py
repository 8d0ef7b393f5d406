"""Activities as Teams sends them to the bot, and the tenant, users and conversations they come
from. Each carries the connector's URL as its `serviceUrl`, so the bot's replies land there."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP_ID = "c9e1b3a0-5a6d-4c8e-9f3b-1d2e3f4a5b6c"
BOT_ID = "28:c9e1b3a0-5a6d-4c8e-9f3b-1d2e3f4a5b6c"
BOT_NAME = "Chatbot"
PERSONAL = "a:1qHx7dW0ZsKpXyGVmZtQq3fO8mJv2rB5nE9cL4aT6uI0wS1kD7hY2gF3jR8pM5bN0vC6xZ4-personal"
CHANNEL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
GROUP = "19:meeting_NjQ2YjVhZjYtYzY0OS00ZDY4LWE1YmEtZTU3YjVmYzQ0ZWE4@thread.v2"

Payload = dict[str, Any]
_ids = itertools.count(1)


@dataclass(frozen=True)
class User:
    teams_id: str
    aad_id: str
    name: str

    def account(self) -> Payload:
        return {"id": self.teams_id, "name": self.name, "aadObjectId": self.aad_id}


ADA = User(
    "29:1Ada-Ln8sG3kVx0QwErTyUiOpAsDfGhJkLzXcVbNm", "6a7b8c9d-0000-4e1f-8a2b-3c4d5e6f7a8b", "Ada Lovelace"
)
GRACE = User(
    "29:1Grace-Hp2Zx9QwErTyUiOpAsDfGhJkLzXcVbNmQ", "9e8d7c6b-1111-4a5b-9c8d-7e6f5a4b3c2d", "Grace Hopper"
)


def _base(kind: str, *, user: User, conversation: Payload, service_url: str, **extra: Any) -> Payload:
    return {
        "type": kind,
        "id": extra.pop("id", None) or str(next(_ids) + 1_718_000_000_000),
        "timestamp": "2025-06-11T10:15:30.123Z",
        "localTimestamp": "2025-06-11T11:15:30.123+01:00",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": user.account(),
        "conversation": conversation,
        "recipient": {"id": BOT_ID, "name": BOT_NAME},
        "locale": "en-GB",
        "localTimezone": "Europe/London",
        **extra,
    }


def personal() -> Payload:
    return {"conversationType": "personal", "tenantId": TENANT, "id": PERSONAL}


def channel_thread(root: str) -> Payload:
    return {
        "isGroup": True,
        "conversationType": "channel",
        "tenantId": TENANT,
        "id": f"{CHANNEL};messageid={root}",
    }


def group_chat() -> Payload:
    return {"isGroup": True, "conversationType": "groupChat", "tenantId": TENANT, "id": GROUP}


def channel_data(conversation: Payload) -> Payload:
    data: Payload = {"tenant": {"id": TENANT}}
    if conversation["conversationType"] == "channel":
        data |= {
            "teamsChannelId": CHANNEL,
            "teamsTeamId": "19:team0d2c3b4a@thread.tacv2",
            "channel": {"id": CHANNEL},
            "team": {"id": "19:team0d2c3b4a@thread.tacv2"},
        }
    return data


def message(
    text: str,
    *,
    service_url: str,
    user: User = ADA,
    conversation: Payload | None = None,
    mention: bool = False,
    id: str | None = None,
) -> Payload:
    """A message to the bot; with `mention`, `<at>Chatbot</at>` leads the text, as in a channel."""
    conversation = conversation or personal()
    entities: list[Payload] = [
        {
            "type": "clientInfo",
            "locale": "en-GB",
            "country": "GB",
            "platform": "Web",
            "timezone": "Europe/London",
        }
    ]
    if mention:
        at = f"<at>{BOT_NAME}</at>"
        text = f"{at} {text}"
        entities.insert(0, {"type": "mention", "text": at, "mentioned": {"id": BOT_ID, "name": BOT_NAME}})
    return _base(
        "message",
        user=user,
        conversation=conversation,
        service_url=service_url,
        id=id,
        text=text,
        textFormat="plain",
        attachments=[{"contentType": "text/html", "content": f"<div><div>{text}</div></div>"}],
        entities=entities,
        channelData=channel_data(conversation),
    )


def feedback_invoke(
    reply_to_id: str,
    reaction: str,
    *,
    service_url: str,
    text: str = "",
    user: User = ADA,
    id: str | None = None,
) -> Payload:
    """A click on Teams' own 👍/👎 under an AI answer, with what was typed in the feedback form."""
    return _base(
        "invoke",
        user=user,
        conversation=personal(),
        service_url=service_url,
        id=id,
        name="message/submitAction",
        replyToId=reply_to_id,
        value={
            "actionName": "feedback",
            "actionValue": {"reaction": reaction, "feedback": f'{{"feedbackText":"{text}"}}'},
        },
        channelData={
            "tenant": {"id": TENANT},
            "source": {"name": "message"},
            "legacy": {"replyToId": reply_to_id},
        },
    )


def reaction(
    reply_to_id: str,
    *,
    service_url: str,
    added: list[str] = (),  # type: ignore[assignment]
    removed: list[str] = (),  # type: ignore[assignment]
    user: User = GRACE,
    conversation: Payload | None = None,
) -> Payload:
    extra: Payload = {}
    if added:
        extra["reactionsAdded"] = [{"type": r} for r in added]
    if removed:
        extra["reactionsRemoved"] = [{"type": r} for r in removed]
    conversation = conversation or personal()
    return _base(
        "messageReaction",
        user=user,
        conversation=conversation,
        service_url=service_url,
        replyToId=reply_to_id,
        channelData=channel_data(conversation) | {"legacy": {"replyToId": reply_to_id}},
        **extra,
    )


def card_execute(reply_to_id: str, data: Payload, *, service_url: str, user: User = ADA) -> Payload:
    """An Action.Execute on the bot's card (Universal Actions): inputs are merged into `data`."""
    return _base(
        "invoke",
        user=user,
        conversation=personal(),
        service_url=service_url,
        name="adaptiveCard/action",
        replyToId=reply_to_id,
        value={
            "action": {
                "type": "Action.Execute",
                "title": "Send correction",
                "verb": data["action"],
                "data": data,
            },
            "trigger": "manual",
        },
        channelData={
            "tenant": {"id": TENANT},
            "source": {"name": "message"},
            "legacy": {"replyToId": reply_to_id},
        },
    )


def card_submit(reply_to_id: str, data: Payload, *, service_url: str, user: User = ADA) -> Payload:
    """An Action.Submit on the bot's card, as older clients send it: a message with a `value`."""
    return _base(
        "message",
        user=user,
        conversation=personal(),
        service_url=service_url,
        replyToId=reply_to_id,
        value=data,
        channelData={
            "tenant": {"id": TENANT},
            "source": {"name": "message"},
            "legacy": {"replyToId": reply_to_id},
        },
    )
