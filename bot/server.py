"""The bot process's web server, on `PORT`.

    GET  /healthz       liveness, which Slack mode is on, and whether the model server answers
    GET  /metrics       Prometheus metrics (bot.metrics)
    GET  /, /console/   the browser console (bot.console): chat, review, model, quality
    POST /slack/events  Slack's Events API and interactivity (HTTP mode): signed only (bot.slack.gate)
    POST /api/messages  Microsoft Teams (Bot Framework), when Teams is on

With `SLACK_APP_TOKEN` set, Slack's events arrive over Socket Mode instead and /slack/events is not
served. `build_app` takes collaborators that are already built (tests hand it fakes); `serve`
builds the real ones from settings and runs until SIGINT/SIGTERM, letting answers in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot import console as web_console
from bot.banner import SlackSignIn, banner
from bot.inflight import Inflight
from bot.metrics import BotMetrics
from bot.records import Records
from bot.review.news import together
from bot.slack import Deps, build_slack_app, gate
from bot.slack.listeners.review import post_missing_cards
from bot.slack.review_notify import slack_news, web_client
from bot.teams import TeamsDeps, TeamsEndpoint
from bot.teams.review_notify import teams_news
from chatbot.settings import Settings, SettingsError
from feedback.db import Database
from model_server.health import HealthCache

log = logging.getLogger(__name__)

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


async def application(settings: Settings) -> web.Application:
    """The real collaborators, built from settings inside the server's event loop."""
    from chatbot.wiring import (
        admin_actions,
        admin_commands,
        build_pipeline,
        open_database,
        open_knowledge,
        review_desk,
    )

    bot_token = settings.slack_bot_token.get_secret_value()
    app_token = settings.slack_app_token.get_secret_value()
    signing_secret = settings.slack_signing_secret.get_secret_value()
    if bot_token and not app_token and not signing_secret:
        raise SettingsError(
            "SLACK_SIGNING_SECRET is not set: it verifies Slack's requests in HTTP mode. "
            "Set it, or set SLACK_APP_TOKEN to use Socket Mode."
        )
    if not bot_token:
        log.warning("SLACK_BOT_TOKEN is not set: Slack is off")

    database = open_database(settings)
    knowledge = open_knowledge(settings)
    pipeline = build_pipeline(settings, database=database, knowledge=knowledge)
    review = review_desk(settings, database=database, knowledge=knowledge)
    if not review.policy.reviewers:
        log.warning("neither REVIEWERS nor ADMIN_USERS is set: nobody can approve corrections")
    deps = Deps(
        pipeline=pipeline, records=Records(database), review=review, review_channel=settings.review_channel
    )
    deps.admin = admin_commands(settings, database)
    metrics = BotMetrics(database, base_name=settings.served_model_name)
    pipeline.observers.append(metrics.observe_answer)
    teams = _teams(settings, deps, database)
    # Who hears of a review decision: a Teams author wherever it was taken; the Slack card and a
    # Slack author also when the console took it (Slack's own cards tell those themselves).
    teams_told = None if teams is None else teams_news(teams.adapter, app_id=teams.deps.app_id)
    deps.tell_elsewhere = teams_told
    slack_told = None
    if bot_token:
        client = web_client(bot_token=bot_token, api_url=settings.slack_api_url)
        slack_told = slack_news(client, approvals_required=review.policy.approvals_required)
    console = web_console.ConsoleDeps(
        pipeline=pipeline,
        database=database,
        records=Records(database, platform=web_console.PLATFORM),
        review=review,
        admin=admin_actions(settings, database),
        admin_token=settings.admin_token.get_secret_value(),
        console_users=settings.console_logins(),
        chat_open=settings.console_chat_open,
        inflight=deps.inflight,
        answering=deps.answering,
        on_decided=together(slack_told, teams_told),
    )
    slack, session = None, None
    if bot_token:
        session = aiohttp.ClientSession()  # one keep-alive pool for every Web API call
        slack = build_slack_app(
            deps,
            bot_token=bot_token,
            signing_secret=signing_secret,
            api_url=settings.slack_api_url,
            session=session,
        )
    app = build_app(
        slack=slack,
        teams=teams,
        inflight=deps.inflight,
        socket_mode_token=app_token,
        signing_secret=signing_secret,
        metrics=metrics,
        console=console,
        model_health=HealthCache(lambda seconds: pipeline.client.health(timeout=seconds)),
    )
    if slack is not None and settings.review_channel:
        app.cleanup_ctx.append(_review_cards(slack, deps))

    async def close(_: web.Application) -> None:
        if session is not None:
            await session.close()
        await pipeline.client.aclose()
        database.dispose()

    app.on_cleanup.append(close)
    return app


def _teams(settings: Settings, deps: Deps, database: Database) -> TeamsEndpoint | None:
    """Teams with MICROSOFT_APP_ID set (requests authenticated); without it, only in development,
    where the Bot Framework Emulator on this machine talks to it unauthenticated (from anywhere with
    TEAMS_ALLOW_UNAUTHENTICATED)."""
    app_id = settings.microsoft_app_id
    password = settings.microsoft_app_password.get_secret_value()
    if app_id and not password:
        raise SettingsError(
            "MICROSOFT_APP_PASSWORD is not set: Teams needs the client secret of the bot's app "
            "registration along with MICROSOFT_APP_ID."
        )
    if not app_id and settings.environment != "development":
        log.warning("MICROSOFT_APP_ID is not set: Teams is off")
        return None
    if not app_id and settings.teams_allow_unauthenticated:
        log.warning(
            "MICROSOFT_APP_ID is not set and TEAMS_ALLOW_UNAUTHENTICATED is on: /api/messages takes "
            "unauthenticated activities from anyone who reaches this port (admin commands stay off)"
        )
    elif not app_id:
        log.warning(
            "MICROSOFT_APP_ID is not set: /api/messages takes unauthenticated activities from this "
            "machine only (the Bot Framework Emulator)"
        )
    teams_deps = TeamsDeps(
        pipeline=deps.pipeline,
        records=Records(database, platform="teams"),
        app_id=app_id,
        admin=deps.admin,  # the same admin commands as Slack's /chatbot; None without ADMIN_USERS
        inflight=deps.inflight,
        answering=deps.answering,
    )
    return TeamsEndpoint(
        teams_deps,
        app_password=password,
        tenant_id=settings.microsoft_app_tenant_id,
        allow_unauthenticated=settings.teams_allow_unauthenticated,
    )


def _review_cards(slack: AsyncApp, deps: Deps, every: float = REVIEW_CARDS_SECONDS) -> CleanupContext:
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


def serve(settings: Settings) -> None:
    """`chatbot bot`: serve on PORT until SIGINT or SIGTERM. Once it listens, it prints where the
    console is and whether Slack and Teams are connected (`bot.banner`)."""
    built: list[web.Application] = []

    async def app() -> web.Application:
        built.append(await application(settings))
        return built[0]

    def listening(_: str) -> None:
        log.info("the bot listens on port %d", settings.port)
        print(banner(settings, built[0].get(SLACK_SIGN_IN)), flush=True)

    web.run_app(
        app(), host="0.0.0.0", port=settings.port, shutdown_timeout=DRAIN_SECONDS + 5, print=listening
    )
