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

import logging
from typing import Protocol

from aiohttp import web

from bot import console as web_console
from bot.inflight import Inflight
from bot.metrics import BotMetrics
from bot.teams import TeamsEndpoint
from model_server.health import HealthCache

log = logging.getLogger(__name__)

SLACK_MODE = web.AppKey("slack_mode", str)
INFLIGHT = web.AppKey("inflight", Inflight)
MODEL_HEALTH = web.AppKey("model_health", HealthCache)
DRAIN_SECONDS = 30.0


class Surface(Protocol):
    """A platform served over this server's routes (`bot.slack.web.SlackRoutes`)."""

    @property
    def mode(self) -> str: ...

    def install(self, app: web.Application) -> None: ...


def build_app(
    *,
    slack: Surface | None = None,
    teams: TeamsEndpoint | None = None,
    inflight: Inflight | None = None,
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
    app[SLACK_MODE] = "off" if slack is None else slack.mode
    app.router.add_get("/healthz", healthz)
    if metrics is not None:
        app.router.add_get("/metrics", metrics.handle)
    if console is not None:
        web_console.install(app, console)
    if slack is not None:
        slack.install(app)
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
