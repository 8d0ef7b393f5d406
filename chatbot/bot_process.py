"""The bot process (`chatbot bot`): its collaborators built from settings, then served by
`bot.server.build_app` on PORT until SIGINT or SIGTERM, letting answers in flight finish."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from bot import console as web_console
from bot.inbox import Inbox
from bot.metrics import BotMetrics
from bot.records import Records
from bot.review.news import together
from bot.server import DRAIN_SECONDS, build_app
from bot.slack import Deps, build_slack_app
from bot.slack.review_notify import slack_news, web_client
from bot.slack.web import SLACK_SIGN_IN, SlackRoutes, review_cards
from bot.teams import TeamsDeps, TeamsEndpoint
from bot.teams.review_notify import teams_news
from chatbot import wiring
from chatbot.banner import banner
from chatbot.settings import Settings, SettingsError
from feedback.db import Database
from model_server.health import HealthCache

log = logging.getLogger(__name__)


async def application(settings: Settings) -> web.Application:
    """The real collaborators, built from settings inside the server's event loop."""
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

    database = wiring.open_database(settings)
    knowledge = wiring.open_knowledge(settings)
    pipeline = wiring.build_pipeline(settings, database=database, knowledge=knowledge)
    review = wiring.review_desk(settings, database=database, knowledge=knowledge)
    if not review.policy.reviewers:
        log.warning("neither REVIEWERS nor ADMIN_USERS is set: nobody can approve corrections")
    timeout = settings.bot_replica_timeout_seconds
    deps = Deps(
        pipeline=pipeline,
        records=Records(database),
        review=review,
        review_channel=settings.review_channel,
        inbox=Inbox(database, stale=timeout, beat=timeout / 10),
    )
    deps.admin = wiring.admin_commands(settings, database)
    metrics = BotMetrics(database, base_name=settings.served_model_name)
    pipeline.observers.append(metrics.observe_answer)
    teams = teams_endpoint(settings, deps, database)
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
        admin=wiring.admin_actions(settings, database),
        admin_token=settings.admin_token.get_secret_value(),
        console_users=settings.console_logins(),
        chat_open=settings.console_chat_open,
        inflight=deps.inflight,
        answering=deps.answering,
        on_decided=together(slack_told, teams_told),
    )
    if teams is not None:  # a decision on the Teams card: the Slack card and any author are told
        teams.deps.on_decided = together(slack_told, teams_told)
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
    routes = None if slack is None else SlackRoutes(slack, signing_secret, socket_mode_token=app_token)
    app = build_app(
        slack=routes,
        teams=teams,
        inflight=deps.inflight,
        metrics=metrics,
        console=console,
        model_health=HealthCache(lambda seconds: pipeline.client.health(timeout=seconds)),
    )
    if slack is not None and settings.review_channel:
        app.cleanup_ctx.append(review_cards(slack, deps))
    if deps.inbox is not None and deps.inbox.handlers:
        app.cleanup_ctx.append(deps.inbox.running())

    async def close(_: web.Application) -> None:
        if session is not None:
            await session.close()
        await pipeline.client.aclose()
        database.dispose()

    app.on_cleanup.append(close)
    return app


def teams_endpoint(settings: Settings, deps: Deps, database: Database) -> TeamsEndpoint | None:
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
        review=deps.review,
        inflight=deps.inflight,
        answering=deps.answering,
        inbox=deps.inbox,  # one inbox: this replica takes over either platform's questions
    )
    return TeamsEndpoint(
        teams_deps,
        app_password=password,
        tenant_id=settings.microsoft_app_tenant_id,
        allow_unauthenticated=settings.teams_allow_unauthenticated,
    )


def serve(settings: Settings) -> None:
    """`chatbot bot`: serve on PORT until SIGINT or SIGTERM. Once it listens, it prints where the
    console is and whether Slack and Teams are connected (`chatbot.banner`)."""
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
