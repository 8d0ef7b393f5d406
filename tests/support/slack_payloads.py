"""What Slack sends to the bot: requests signed with the app's signing secret, Events API envelopes
and the events, interactions and modal submissions inside them, in Slack's own shapes."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

from tests.support.slack_api import APP_ID, BOT_ID, BOT_USER, SIGNING_SECRET, TEAM, Payload, next_id


def signature_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def event_callback(event: Payload, *, event_id: str | None = None) -> Payload:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next_id():010d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM,
                "user_id": BOT_USER,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def mention(message: Payload, channel: str) -> Payload:
    """The `app_mention` event for a person's message that mentions the bot."""
    return {**message, "type": "app_mention", "channel": channel, "event_ts": message["ts"]}


def message_event(message: Payload, channel: str, channel_type: str = "channel") -> Payload:
    """The `message` event (message.channels, message.im, ...) for a stored message."""
    return {**message, "channel": channel, "channel_type": channel_type, "event_ts": message["ts"]}


def reaction_event(
    kind: str, name: str, *, user: str, channel: str, ts: str, item_user: str = BOT_USER
) -> Payload:
    return {
        "type": kind,
        "user": user,
        "reaction": name,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def block_actions(
    *, user: str, channel: str, message: Payload, action: Payload, ephemeral: bool = False
) -> Payload:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": ephemeral,
            "thread_ts": message.get("thread_ts", message["ts"]),
        },
        "trigger_id": f"{next_id()}.{TEAM}.{uuid.uuid4().hex}",
        "team": {"id": TEAM, "domain": "larkspur-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "general"},
        "message": message,
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM}/1/abc",
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }


def view_submission(*, user: str, view: Payload, text: str | None) -> Payload:
    """The modal `view` (as views.open was given it) submitted with `text` in its input."""
    block = view["blocks"][0]
    value = {"type": "plain_text_input", "value": text}
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "larkspur-test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": f"{next_id()}.{TEAM}.{uuid.uuid4().hex}",
        "view": {
            **view,
            "id": f"V{next_id():08d}",
            "team_id": TEAM,
            "state": {"values": {block["block_id"]: {block["element"]["action_id"]: value}}},
            "hash": uuid.uuid4().hex,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }


def slash_command(
    command: str, text: str, *, user: str, channel: str, slack_port: int, trigger_id: str
) -> Payload:
    """The form Slack posts for `command TEXT` typed by `user` in `channel`; its response_url points at
    the local Slack on `slack_port` (Slack's is https://hooks.slack.com/commands/...)."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "larkspur-test",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "response_url": f"http://127.0.0.1:{slack_port}/commands/{TEAM}/1/abc",
        "trigger_id": trigger_id,
    }
