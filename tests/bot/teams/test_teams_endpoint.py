"""`/api/messages` itself: authentication on and off, and what it answers to requests that are not
Bot Framework activities. Also which settings turn Teams on in the bot process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.admin import AdminCommands
from bot.records import Records
from bot.slack import Deps
from bot.teams import cards
from chatbot.bot_process import teams_endpoint
from chatbot.settings import Settings, SettingsError
from feedback.db import Database
from tests.support.teams_activities import card_execute, message
from tests.support.teams_harness import TeamsBot, running_teams_bot

APP_ID = "c9e1b3a0-5a6d-4c8e-9f3b-1d2e3f4a5b6c"


def nothing_happened(bot: TeamsBot) -> bool:
    with bot.database.reader() as session:
        from feedback.models import Question

        return bot.connector.received == [] and session.get(Question, 1) is None


async def test_with_an_app_id_a_request_without_a_token_is_refused(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, app_id=APP_ID, app_password="s3cret-value") as bot:
        response = await bot.send(message("How many days of leave?", service_url=bot.service_url))
        assert response.status_code == 401
        await bot.settled()
        assert nothing_happened(bot)
        assert bot.model.requests == []


async def test_with_an_app_id_a_forged_token_is_refused(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, app_id=APP_ID, app_password="s3cret-value") as bot:
        forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0."}
        response = await asyncio.wait_for(
            bot.send(message("hi", service_url=bot.service_url), headers=forged), timeout=30
        )
        assert response.status_code == 401
        await bot.settled()
        assert nothing_happened(bot)


async def test_without_an_app_id_the_emulator_needs_no_token(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path) as bot:
        reply = await bot.ask()
        assert reply.authorization is None  # and the bot sends no token back either


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"hello", "text/plain", 415),
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"text": "no type"}', "application/json", 400),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),  # deeper than json can parse
        (b'{"type": "message", "text": "hi"}', "application/json", 400),  # no conversation to reply in
        (b'{"type": "message", "conversation": {"id": " "}}', "application/json", 400),
        (rb'{"type": "message", "conversation": {"id": "\u202e\ud83d\ude42"}}', "application/json", 400),
        (rb'{"type": "message", "id": "a\u0000", "conversation": {"id": "a:1"}}', "application/json", 400),
    ],
)
async def test_a_request_that_is_not_an_activity_is_a_clear_client_error(
    tmp_path: Path, body: bytes, content_type: str, status: int
) -> None:
    async with running_teams_bot(tmp_path) as bot:
        response = await bot.http.post("/api/messages", content=body, headers={"Content-Type": content_type})
        assert response.status_code == status
        assert "error" in response.json()
        assert nothing_happened(bot)


@pytest.mark.parametrize("name", ["composeExtension/query", "task/fetch", "signin/verifyState", None])
async def test_an_invoke_the_bot_does_not_offer_is_a_bad_request(tmp_path: Path, name: str | None) -> None:
    """botbuilder answers 501 to an invoke no handler answered: a 5xx anyone can cause at will."""
    async with running_teams_bot(tmp_path) as bot:
        invoke = message("", service_url=bot.service_url) | {"type": "invoke", "name": name}
        response = await bot.send(invoke)
        assert response.status_code == 400
        assert response.json() == {"error": cards.UNKNOWN_INVOKE}
        await bot.settled()
        assert nothing_happened(bot)


async def test_a_card_action_the_bot_does_not_offer_is_a_bad_request_with_a_sentence(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path) as bot:
        data = {"action": "approveExpense", "answer_id": 1, "correction": "x"}
        response = await bot.send(card_execute("1718999999999", data, service_url=bot.service_url))
        assert response.status_code == 400
        assert response.json() == cards.card_error(cards.UNKNOWN_ACTION)  # Teams shows it on the card
        await bot.settled()
        assert nothing_happened(bot)


# --- which settings turn Teams on -------------------------------------------------------------


def _deps(tmp_path: Path) -> tuple[Deps, Database]:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    return Deps(pipeline=None, records=Records(database)), database  # type: ignore[arg-type]


def test_an_app_id_without_its_password_stops_the_bot_with_a_clear_message(tmp_path: Path) -> None:
    deps, database = _deps(tmp_path)
    settings = Settings(microsoft_app_id=APP_ID)
    with pytest.raises(SettingsError, match="MICROSOFT_APP_PASSWORD is not set"):
        teams_endpoint(settings, deps, database)


def test_teams_is_off_in_production_without_an_app_id(tmp_path: Path) -> None:
    deps, database = _deps(tmp_path)
    assert teams_endpoint(Settings(environment="production"), deps, database) is None


async def test_teams_is_on_in_development_without_auth_and_with_it_given_an_app_id(tmp_path: Path) -> None:
    deps, database = _deps(tmp_path)
    deps.admin = AdminCommands(database, admins=["6a7b8c9d-0000-4e1f-8a2b-3c4d5e6f7a8b"])
    emulator = teams_endpoint(Settings(), deps, database)
    assert emulator is not None and not emulator.authenticated
    assert emulator.deps.admin is deps.admin  # the same admin commands as Slack's
    teams = teams_endpoint(
        Settings(environment="production", microsoft_app_id=APP_ID, microsoft_app_password="s3cret-value"),
        deps,
        database,
    )
    assert teams is not None and teams.authenticated
    assert teams.deps.records.platform == "teams"
