"""The bot process's web server, on `PORT`.

    GET  /healthz       liveness, which Slack mode is on, and whether the model server answers
    GET  /metrics       Prometheus metrics (bot.metrics)
    GET  /, /console/   the browser console (bot.console): chat, review, model, quality
    POST /slack/events  Slack's Events API and interactivity (HTTP mode): signed only (bot.slack.gate)
    POST /api/messages  Microsoft Teams (Bot Framework), when Teams is on

With `SLACK_APP_TOKEN` set, Slack's events arrive over Socket Mode instead and /slack/events is not
served. `build_app` takes collaborators that are already built: `chatbot.bot_process` builds the
real ones from settings, tests hand in fakes.
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

from bot import console as web_console
from bot.errors import SettingsError
from bot.inflight import Inflight
from bot.metrics import BotMetrics
from bot.slack import Deps, gate
from bot.slack.listeners.review import post_missing_cards
from bot.teams import TeamsEndpoint
from model_server.health import HealthCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackSignIn:
    """The answer to Slack's auth.test at start: who we are, or why we could not ask."""

    team: str = ""
    user: str = ""
    error: str = ""  # empty when signed in


SLACK_MODE = web.AppKey("slack_mode", str)
INFLIGHT = web.AppKey("inflight", Inflight)
SLACK_SIGN_IN = web.AppKey("slack_sign_in", SlackSignIn)  # auth.test at start, for the banner
MODEL_HEALTH = web.AppKey("model_health", HealthCache)
DRAIN_SECONDS = 30.0
REVIEW_CARDS_SECONDS = 30.0
# auth.test errors that mean the token itself is wrong: starting anyway would only fail later.
BAD_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def build_app(
    *,
    slack: AsyncApp | None = None,
    teams: TeamsEndpoint | None = None,
    inflight: Inflight | None = None,
    socket_mode_token: str = "",
    signing_secret: str = "",
    drain_seconds: float = DRAIN_SECONDS,
    metrics: BotMetrics | None = None,
    console: web_console.ConsoleDeps | None = None,
    model_health: HealthCache | None = None,
) -> web.Application:
    app = web.Application()
    if model_health is not None:
        app[MODEL_HEALTH] = model_health
    inflight = Inflight() if inflight is None else inflight
    app[INFLIGHT] = inflight
    app[SLACK_MODE] = "off" if slack is None else "socket" if socket_mode_token else "http"
    app.router.add_get("/healthz", healthz)
    if metrics is not None:
        app.router.add_get("/metrics", metrics.handle)
    if console is not None:
        web_console.install(app, console)
    if slack is not None:
        app.on_startup.append(_check_slack_token(slack))
        if socket_mode_token:
            app.cleanup_ctx.append(_socket_mode(slack, socket_mode_token))
        else:
            if not signing_secret:
                raise ValueError("Slack over HTTP needs the signing secret that verifies its requests")
            app.router.add_post("/slack/events", gate.events_handler(slack, signing_secret=signing_secret))
    if teams is not None:
        app.router.add_post("/api/messages", teams.handle)

    async def drain(_: web.Application) -> None:
        await inflight.drain(drain_seconds)

    app.on_shutdown.append(drain)
    return app


async def healthz(request: web.Request) -> web.Response:
    """200 while the bot serves, "degraded" when the model server does not answer: the bot still
    records votes, serves the console and tells askers kindly, so a load balancer keeps it."""
    state: dict[str, object] = {"status": "ok"}
    model = request.app.get(MODEL_HEALTH)
    if model is not None:
        up = await model.up()
        state = {"status": "ok" if up else "degraded", "model_server": "up" if up else "down"}
    state |= {"slack": request.app[SLACK_MODE], "in_flight": request.app[INFLIGHT].count}
    return web.json_response(state)


def _check_slack_token(slack: AsyncApp) -> Callable[[web.Application], Awaitable[None]]:
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


def _socket_mode(slack: AsyncApp, app_token: str) -> CleanupContext:
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
