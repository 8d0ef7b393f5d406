"""Slack on the bot's web server: the signed Events API route (HTTP mode) or a Socket Mode
connection, a check of the bot token at start, and the sweep that posts missing review cards.

    build_app(slack=SlackRoutes(bolt_app, signing_secret=secret), ...)   # bot.server
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.errors import SettingsError
from bot.slack import gate
from bot.slack.deps import Deps
from bot.slack.listeners.review import post_missing_cards

log = logging.getLogger(__name__)

REVIEW_CARDS_SECONDS = 30.0
# auth.test errors that mean the token itself is wrong: starting anyway would only fail later.
BAD_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@dataclass(frozen=True)
class SlackSignIn:
    """The answer to Slack's auth.test at start: who we are, or why we could not ask."""

    team: str = ""
    user: str = ""
    error: str = ""  # empty when signed in


SLACK_SIGN_IN = web.AppKey("slack_sign_in", SlackSignIn)  # auth.test at start, for the banner


@dataclass(frozen=True)
class SlackRoutes:
    """A Bolt app served over HTTP (with the signing secret that verifies Slack's requests) or, with
    `socket_mode_token`, over Socket Mode."""

    app: AsyncApp
    signing_secret: str = ""
    socket_mode_token: str = ""

    def __post_init__(self) -> None:
        if not (self.socket_mode_token or self.signing_secret):
            raise ValueError("Slack over HTTP needs the signing secret that verifies its requests")

    @property
    def mode(self) -> str:
        return "socket" if self.socket_mode_token else "http"

    def install(self, app: web.Application) -> None:
        app.on_startup.append(check_token(self.app))
        if self.socket_mode_token:
            app.cleanup_ctx.append(socket_mode(self.app, self.socket_mode_token))
        else:
            app.router.add_post(
                "/slack/events", gate.events_handler(self.app, signing_secret=self.signing_secret)
            )


def check_token(slack: AsyncApp) -> Callable[[web.Application], Awaitable[None]]:
    """Ask Slack who we are once at start, so a wrong token stops the process with a clear message
    instead of failing on the first question. Slack being unreachable is only logged: Bolt asks
    again on the first event."""

    async def check(app: web.Application) -> None:
        try:
            me = await slack.client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error")
            app[SLACK_SIGN_IN] = SlackSignIn(error=str(error))
            if error in BAD_TOKEN:
                raise SettingsError(
                    f"Slack refused SLACK_BOT_TOKEN ({error}); copy the Bot User OAuth Token (xoxb-...) "
                    "from your app's OAuth & Permissions page."
                ) from None
            log.warning("Slack's auth.test failed (%s); carrying on", error)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Slack's Web API is not reachable yet (%s); carrying on", exc)
            app[SLACK_SIGN_IN] = SlackSignIn(error=str(exc) or type(exc).__name__)
        else:
            app[SLACK_SIGN_IN] = SlackSignIn(team=str(me.get("team", "")), user=str(me.get("user", "")))
            log.info("Slack: signed in to %s as @%s", me.get("team"), me.get("user"))

    return check


def socket_mode(slack: AsyncApp, app_token: str) -> CleanupContext:
    async def connected(_: web.Application) -> AsyncIterator[None]:
        # Built here: the Socket Mode client needs the running event loop.
        handler = AsyncSocketModeHandler(slack, app_token)
        await handler.connect_async()
        log.info("Slack: connected in Socket Mode")
        yield
        await handler.close_async()

    return connected


def review_cards(slack: AsyncApp, deps: Deps, every: float = REVIEW_CARDS_SECONDS) -> CleanupContext:
    """Every `every` seconds, post review cards that no listener posted (see `post_missing_cards`)."""

    async def sweeping(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    await post_missing_cards(deps, slack.client)
                except Exception:
                    log.exception("posting review cards failed; trying again later")
                await asyncio.sleep(every)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return sweeping
