"""The bot's web server around Slack: built from settings, Socket Mode, the start-up token check, a
burst of questions, and shutting down with answers in flight.

Socket Mode runs against the local Slack's WebSocket endpoint, which speaks the documented envelope
protocol (hello, events_api envelopes, acks by envelope_id). That proves our wiring and slack_sdk's
client together; it cannot prove Slack's real servers accept our app token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.pipeline import Pipeline
from bot.server import build_app
from bot.slack import build_slack_app
from bot.slack.web import SlackRoutes
from chatbot import wiring
from chatbot.bot_process import application
from chatbot.settings import Settings, SettingsError
from feedback.db import Database
from tests.support.common import serving
from tests.support.fakes import FakeModel
from tests.support.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackServer
from tests.support.slack_harness import make_deps
from tests.support.slack_payloads import event_callback, mention, signature_headers

QUESTION = "<@U0BOT> how many days of leave do I get?"


async def test_socket_mode_answers_events_pushed_over_the_websocket(database: Database) -> None:
    async with SlackServer() as slack:
        deps = make_deps(database, FakeModel())
        app = build_slack_app(deps, bot_token=BOT_TOKEN, signing_secret="", api_url=slack.api_url)
        async with (
            serving(
                build_app(slack=SlackRoutes(app, socket_mode_token=APP_TOKEN), inflight=deps.inflight)
            ) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            assert slack.called("apps.connections.open")
            assert (await http.get("/healthz")).json()["slack"] == "socket"
            assert (await http.post("/slack/events", content=b"{}")).status_code in (404, 405)

            message = slack.add_message("C1", "U1", QUESTION)
            envelope = event_callback(mention(message, "C1"))
            first = await slack.socket_send(envelope)
            retry = await slack.socket_send(envelope, retry_attempt=1)
            [post] = await slack.wait_for_replies()
            assert post["thread_ts"] == message["ts"] and post["text"] == "You get 27 days of leave a year."
            acked = {a["envelope_id"] for a in slack.socket_acks}
            assert {first, retry} <= acked
            await deps.inflight.drain(10)
            assert len(slack.replies) == 1
        await deps.pipeline.client.aclose()


async def test_a_refused_bot_token_stops_the_server_at_start(database: Database) -> None:
    async with SlackServer() as slack:
        deps = make_deps(database, FakeModel())
        app = build_slack_app(
            deps, bot_token="xoxb-wrong", signing_secret=SIGNING_SECRET, api_url=slack.api_url
        )
        with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN"):
            async with serving(build_app(slack=SlackRoutes(app, SIGNING_SECRET), inflight=deps.inflight)):
                pass
        await deps.pipeline.client.aclose()


async def test_http_mode_is_not_served_without_the_signing_secret(database: Database) -> None:
    deps = make_deps(database, FakeModel())
    app = build_slack_app(deps, bot_token=BOT_TOKEN, signing_secret="", api_url="http://127.0.0.1:9/api/")
    with pytest.raises(ValueError, match="signing secret"):
        build_app(slack=SlackRoutes(app), inflight=deps.inflight)
    await deps.pipeline.client.aclose()


async def test_without_slack_the_server_still_serves_health() -> None:
    async with serving(build_app()) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok", "slack": "off", "in_flight": 0}
        assert (await http.post("/slack/events", content=b"{}")).status_code in (404, 405)


async def test_a_burst_is_acked_at_once_and_answered_a_few_at_a_time(database: Database) -> None:
    model = FakeModel()
    model.delay = 0.3
    async with SlackServer() as slack:
        deps = make_deps(database, model)
        deps.answering = asyncio.Semaphore(2)  # six answers take at least three model delays
        app = build_slack_app(deps, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url)
        async with (
            serving(build_app(slack=SlackRoutes(app, SIGNING_SECRET), inflight=deps.inflight)) as url,
            httpx.AsyncClient() as http,
        ):
            for i in range(6):
                body = json.dumps(
                    event_callback(mention(slack.add_message(f"C{i}", "U1", QUESTION), f"C{i}"))
                )
                headers = signature_headers(body, content_type="application/json")
                response = await http.post(f"{url}/slack/events", content=body, headers=headers)
                assert response.status_code == 200
            # Every event is acknowledged while most of their answers are still to come.
            assert len(slack.replies) < 6
            await slack.wait_for_replies(count=6)
            assert model.most_active == 2
        await deps.pipeline.client.aclose()


async def test_stopping_the_server_lets_answers_in_flight_finish(database: Database) -> None:
    model = FakeModel()
    model.delay = 0.5
    async with SlackServer() as slack:
        deps = make_deps(database, model)
        app = build_slack_app(deps, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url)
        async with (
            serving(build_app(slack=SlackRoutes(app, SIGNING_SECRET), inflight=deps.inflight)) as url,
            httpx.AsyncClient() as http,
        ):
            body = json.dumps(event_callback(mention(slack.add_message("C1", "U1", QUESTION), "C1")))
            headers = signature_headers(body, content_type="application/json")
            assert (await http.post(f"{url}/slack/events", content=body, headers=headers)).status_code == 200
            await slack.wait_for("assistant.threads.setStatus")
            assert slack.replies == []
        # The server has stopped; the answer that was being written was posted first.
        assert len(slack.replies) == 1
        await deps.pipeline.client.aclose()


def fake_pipeline(model: FakeModel) -> Callable[..., Pipeline]:
    """Stands in for chatbot.wiring.build_pipeline: the real pipeline, with a fake retriever and model."""

    def build(settings: Settings, *, database: Database, knowledge: object = None) -> Pipeline:
        return make_deps(database, model).pipeline

    return build


async def test_application_builds_the_bot_from_settings(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = database.url
    monkeypatch.setattr(wiring, "build_pipeline", fake_pipeline(FakeModel()))
    async with SlackServer() as slack:
        settings = Settings(
            database_url=db_url,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
        )
        async with serving(await application(settings)) as url, httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/healthz")).json()["slack"] == "http"
            body = json.dumps(event_callback(mention(slack.add_message("C1", "U1", QUESTION), "C1")))
            headers = signature_headers(body, content_type="application/json")
            assert (await http.post(f"{url}/slack/events", content=body, headers=headers)).status_code == 200
            [post] = await slack.wait_for_replies()
            assert post["text"] == "You get 27 days of leave a year."


async def test_application_refuses_http_mode_without_a_signing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "build_pipeline", fake_pipeline(FakeModel()))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'chatbot.db'}", slack_bot_token=BOT_TOKEN)
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        await application(settings)
    off = await application(Settings(database_url=f"sqlite:///{tmp_path / 'chatbot.db'}"))
    async with serving(off) as url, httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/healthz")).json()["slack"] == "off"
