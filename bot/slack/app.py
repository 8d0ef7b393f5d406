"""The Bolt app: a Web API client pointed at `SLACK_API_URL`, and the listeners.

Bolt acknowledges Events API deliveries before it runs a listener (`process_before_response` stays
False), so every event is acked at once and answered afterwards. Slack's 429s are retried after the
`Retry-After` it asks for.
"""

from __future__ import annotations

import logging

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import gate, inbox
from bot.slack.deps import Deps
from bot.slack.listeners import register_listeners

RATE_LIMIT_RETRIES = 3


def web_client(
    *, bot_token: str, api_url: str, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    return AsyncWebClient(
        token=bot_token,
        base_url=api_url if api_url.endswith("/") else f"{api_url}/",
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


def build_slack_app(
    deps: Deps,
    *,
    bot_token: str,
    signing_secret: str,
    api_url: str = "https://slack.com/api/",
    session: aiohttp.ClientSession | None = None,
) -> AsyncApp:
    """`signing_secret` verifies HTTP-mode requests; Socket Mode needs none (pass "")."""
    app = AsyncApp(
        client=web_client(bot_token=bot_token, api_url=api_url, session=session),
        # Passed even when empty, so Bolt never falls back to reading the environment itself.
        signing_secret=signing_secret,
        name="chatbot",
        logger=logging.getLogger("bot.slack.bolt"),
    )
    gate.quiet_bolt_refusals()
    if deps.inbox is not None:
        app.middleware(inbox.keeping(deps.inbox))  # before Bolt acknowledges: see bot.slack.inbox
        deps.inbox.handlers["slack"] = inbox.redispatch(app)
    register_listeners(app, deps)
    return app
