"""What the bot prints once it listens: where the console is, and for Slack and Teams either
"connected" or the one thing missing to connect. `make run` shows it among the processes' output.

    The bot is up.
      Console: http://localhost:3000/
      Slack:   set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to connect (docs/slack.md)
      Teams:   set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to connect (docs/teams.md)

Pure functions of the settings and of what the start-up learnt from Slack (`SlackSignIn`), so the
wording is tested without a server.
"""

from __future__ import annotations

from bot.slack.web import SlackSignIn
from chatbot.settings import Settings

SLACK_DOCS = "docs/slack.md"
TEAMS_DOCS = "docs/teams.md"


def console_url(settings: Settings) -> str:
    return f"http://localhost:{settings.port}/"


def slack_line(settings: Settings, signed_in: SlackSignIn | None) -> str:
    bot_token = settings.slack_bot_token.get_secret_value()
    socket_mode = bool(settings.slack_app_token.get_secret_value())
    if not bot_token:
        return (
            f"set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to connect ({SLACK_DOCS}; "
            "or SLACK_BOT_TOKEN and SLACK_APP_TOKEN for Socket Mode)"
        )
    if signed_in is None or signed_in.error:
        why = signed_in.error if signed_in else "not asked yet"
        return (
            f"not connected yet: Slack's Web API at {settings.slack_api_url} did not answer auth.test "
            f"({why}); check the network or SLACK_API_URL (the bot tries again on the first event)"
        )
    who = f"to {signed_in.team} as @{signed_in.user}"
    if socket_mode:
        return f"connected {who} (Socket Mode)"
    return f"connected {who} (HTTP mode: Slack sends events to https://YOUR-HOST/slack/events)"


def teams_line(settings: Settings) -> str:
    if settings.microsoft_app_id and settings.microsoft_app_password.get_secret_value():
        return (
            f"connected as app {settings.microsoft_app_id} "
            "(Azure Bot Service sends messages to https://YOUR-HOST/api/messages)"
        )
    missing = "set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to connect"
    if settings.environment == "development" and settings.teams_allow_unauthenticated:
        return (
            f"{missing} ({TEAMS_DOCS}); until then /api/messages takes unauthenticated activities from "
            "ANY address (TEAMS_ALLOW_UNAUTHENTICATED); admin commands are off"
        )
    if settings.environment == "development":
        return (
            f"{missing} ({TEAMS_DOCS}); until then /api/messages answers only the Bot Framework "
            "Emulator on this machine"
        )
    return f"{missing} ({TEAMS_DOCS})"


def banner(settings: Settings, slack: SlackSignIn | None) -> str:
    console = console_url(settings)
    if not (settings.admin_token.get_secret_value() or settings.console_users.get_secret_value()):
        console += " (admin pages: set ADMIN_TOKEN to sign in)"
    return "\n".join(
        [
            "The bot is up.",
            f"  Console: {console}",
            f"  Slack:   {slack_line(settings, slack)}",
            f"  Teams:   {teams_line(settings)}",
        ]
    )
