"""The banner the bot prints once it listens: the console's address, and for Slack and Teams either
"connected" or the one thing missing. (The e2e test reads it from a real bot's output.)"""

from __future__ import annotations

from typing import Any

from bot.slack.web import SlackSignIn
from chatbot.banner import banner
from chatbot.settings import Settings


def lines(signed_in: SlackSignIn | None = None, **values: Any) -> dict[str, str]:
    text = banner(Settings(**values), signed_in)
    assert text.startswith("The bot is up.\n")
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines()[1:])}


def test_nothing_configured_says_what_to_set_for_each() -> None:
    shown = lines(port=3100)
    assert shown["Console"] == "http://localhost:3100/ (admin pages: set ADMIN_TOKEN to sign in)"
    assert shown["Slack"].startswith("set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to connect (docs/slack.md")
    assert shown["Teams"].startswith("set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to connect")
    # development: meanwhile /api/messages takes the Emulator on this machine, and nothing else
    assert shown["Teams"].endswith("answers only the Bot Framework Emulator on this machine")
    assert "open" not in shown["Teams"]


def test_teams_opened_without_authentication_says_so_loudly() -> None:
    shown = lines(teams_allow_unauthenticated=True)
    assert "unauthenticated activities from ANY address (TEAMS_ALLOW_UNAUTHENTICATED)" in shown["Teams"]
    assert shown["Teams"].endswith("admin commands are off")
    production = lines(teams_allow_unauthenticated=True, environment="production")
    assert production["Teams"] == "set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to connect (docs/teams.md)"


def test_connected_slack_in_each_mode_and_teams() -> None:
    me = SlackSignIn(team="Larkspur", user="chatbot")
    http = lines(me, slack_bot_token="xoxb-1", slack_signing_secret="s", admin_token="t")
    assert http["Console"] == "http://localhost:3000/"
    assert http["Slack"].startswith("connected to Larkspur as @chatbot (HTTP mode")
    socket = lines(me, slack_bot_token="xoxb-1", slack_app_token="xapp-1")
    assert socket["Slack"] == "connected to Larkspur as @chatbot (Socket Mode)"
    teams = lines(microsoft_app_id="app-1", microsoft_app_password="pw", environment="production")
    assert teams["Teams"].startswith("connected as app app-1")


def test_slack_unreachable_and_teams_off_in_production() -> None:
    shown = lines(
        SlackSignIn(error="Cannot connect to host"),
        slack_bot_token="xoxb-1",
        slack_signing_secret="s",
        environment="production",
    )
    assert shown["Slack"].startswith("not connected yet:") and "Cannot connect to host" in shown["Slack"]
    assert shown["Teams"] == "set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to connect (docs/teams.md)"
