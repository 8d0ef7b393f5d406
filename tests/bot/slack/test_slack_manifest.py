"""The app manifest in slack/manifest.yaml agrees with the app: every event it subscribes to is
acknowledged (Bolt answers 404 to events nobody listens to, and Slack would retry them), every URL
points at the one endpoint, the slash command is routed, and every Web API method the bot calls has
its scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO
from tests.support.slack_harness import Bot, running_bot

yaml = pytest.importorskip("yaml")

MANIFEST = REPO / "slack" / "manifest.yaml"
# A minimal event of each subscribable type, as Slack sends it.
SAMPLES: dict[str, dict[str, Any]] = {
    "app_home_opened": {
        "type": "app_home_opened",
        "user": "U1",
        "channel": "D1",
        "tab": "messages",
        "event_ts": "1.0",
    },
    "app_mention": {"type": "app_mention", "user": "U1", "text": "<@U0BOT>", "ts": "1.1", "channel": "C1"},
    "assistant_thread_started": {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": "U1", "channel_id": "D1", "thread_ts": "1.2", "context": {}},
        "event_ts": "1.2",
    },
    "message.channels": {
        "type": "message",
        "channel": "C9",
        "channel_type": "channel",
        "user": "U1",
        "text": "hi",
        "ts": "1.3",
    },
    "message.groups": {
        "type": "message",
        "channel": "G9",
        "channel_type": "group",
        "user": "U1",
        "ts": "1.4",
    },
    "message.im": {"type": "message", "channel": "D9", "channel_type": "im", "user": "U1", "ts": "1.5"},
    "reaction_added": {"type": "reaction_added", "user": "U1", "reaction": "+1", "item": {}},
    "reaction_removed": {"type": "reaction_removed", "user": "U1", "reaction": "+1", "item": {}},
}


@pytest.fixture
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path) as running:
        yield running


async def test_every_subscribed_event_is_acknowledged(bot: Bot, manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) == set(SAMPLES)
    for name in events:
        response, _ = await bot.send_event(SAMPLES[name])
        assert response.status_code == 200, name


async def test_the_slash_command_is_routed(bot: Bot, manifest: dict[str, Any]) -> None:
    [command] = manifest["features"]["slash_commands"]
    response = await bot.send_command(command["command"], "help", user="U1", channel="C1")
    assert response.status_code == 200


def test_every_url_is_the_events_endpoint(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    ]
    assert all(url == "https://YOUR-HOST/slack/events" for url in urls)
    assert settings["interactivity"]["is_enabled"] is True


def test_the_scopes_cover_what_the_bot_calls(manifest: dict[str, Any]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "commands", "reactions:read", "assistant:write"} <= scopes
    assert {"channels:history", "groups:history", "im:history"} <= scopes  # conversations.replies
    # Slack grants assistant:write only with an AI-app surface: agent_view, which replaces assistant_view
    agent = manifest["features"]["agent_view"]
    assert "assistant_view" not in manifest["features"]
    assert 0 < len(agent["agent_description"]) <= 300
    assert manifest["features"]["app_home"]["messages_tab_enabled"]  # the agent's Messages tab
