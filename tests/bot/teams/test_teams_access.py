"""Teams is never open by default: without an app id only this machine (the Emulator) may post,
unless the operator opens it; admin commands never run from a request without a valid token; and
the bot replies only to Bot Framework service URLs (or, in Emulator mode, to this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.records import Records
from bot.slack import Deps
from bot.teams import access, cards, endpoint
from chatbot.bot_process import teams_endpoint
from chatbot.settings import Settings
from feedback import queries
from feedback.db import Database
from feedback.models import Question
from tests.support.teams_activities import ADA, message
from tests.support.teams_harness import TeamsBot, running_teams_bot

ELSEWHERE = "203.0.113.7"  # a documentation address: any machine but this one


def nothing_happened(bot: TeamsBot) -> bool:
    with bot.database.reader() as session:
        return bot.connector.received == [] and session.get(Question, 1) is None and not bot.model.requests


def runs(database: Database) -> list[tuple[str, str | None]]:
    with database.reader() as session:
        return [(r.trigger, r.requested_by) for r in queries.recent_runs(session)]


async def test_without_an_app_id_another_machine_is_refused(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, peer=ELSEWHERE) as bot:
        response = await bot.send(message("How many days of leave?", service_url=bot.service_url))
        assert response.status_code == 403
        assert response.json() == {"error": endpoint.EMULATOR_ONLY}
        await bot.settled()
        assert nothing_happened(bot)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
async def test_a_request_a_proxy_passed_on_is_not_the_emulator(tmp_path: Path, header: str) -> None:
    async with running_teams_bot(tmp_path) as bot:
        activity = message("How many days of leave?", service_url=bot.service_url)
        response = await bot.send(activity, headers={header: ELSEWHERE})
        assert response.status_code == 403
        await bot.settled()
        assert nothing_happened(bot)


async def test_the_operator_can_open_it_to_other_machines(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, peer=ELSEWHERE, allow_unauthenticated=True) as bot:
        reply = await bot.ask()
        assert reply.activity["attachments"]  # the answer card


@pytest.mark.parametrize("opened", [False, True])
@pytest.mark.parametrize("command", ["retrain", "status", "rollback", "adapters"])
async def test_admin_commands_never_run_without_bot_framework_auth(
    tmp_path: Path, command: str, opened: bool
) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], allow_unauthenticated=opened) as bot:
        reply = await bot.ask(command)  # from an admin's id, from this machine
        assert reply.activity["text"] == cards.ADMIN_NEEDS_AUTH
        assert runs(bot.database) == []
        assert bot.model.requests == []
        assert len(bot.connector.messages()) == 1  # nothing else was said: no status, no counts


async def test_help_without_auth_does_not_list_admin_commands(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id]) as bot:
        reply = await bot.ask("help")
        assert reply.activity["text"] == cards.USAGE


@pytest.mark.parametrize(
    "service_url",
    [
        "http://203.0.113.9:8080/",
        "https://attacker.example/",
        "https://smba.trafficmanager.net.attacker.example/",
        "file:///etc/passwd",
        "",
    ],
)
async def test_in_emulator_mode_replies_go_only_to_this_machine_or_bot_framework(
    tmp_path: Path, service_url: str
) -> None:
    async with running_teams_bot(tmp_path) as bot:
        response = await bot.send(message("How many days of leave?", service_url=service_url))
        assert response.status_code == 403
        assert response.json() == {"error": endpoint.BAD_SERVICE_URL}
        await bot.settled()
        assert nothing_happened(bot)
        with bot.database.reader() as session:
            assert queries.recent_runs(session) == []


async def test_with_auth_a_service_url_on_this_machine_is_refused_before_any_reply(tmp_path: Path) -> None:
    # The token is valid and names this serviceUrl; the bot still will not send there.
    async with running_teams_bot(tmp_path, authenticated=True, reply_to_loopback=False) as bot:
        response = await bot.send(message("How many days of leave?", service_url=bot.service_url))
        assert response.status_code == 403
        await bot.settled()
        assert nothing_happened(bot)


async def test_with_auth_an_admin_command_runs(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], authenticated=True) as bot:
        reply = await bot.ask("retrain")
        assert "is queued" in reply.activity["text"]
        assert runs(bot.database) == [("admin", ADA.aad_id)]


@pytest.mark.parametrize(
    ("url", "loopback", "allowed"),
    [
        ("https://smba.trafficmanager.net/emea/", False, True),
        ("https://smba.trafficmanager.net:443/amer/", False, True),
        ("https://SMBA.trafficmanager.net/amer/", False, True),
        ("https://smba.infra.gcc.teams.microsoft.com/gcc/", False, True),
        ("https://smba.infra.gov.teams.microsoft.us/gcch/", False, True),
        ("https://smba.infra.dod.teams.microsoft.us/dod/", False, True),
        ("https://webchat.botframework.com/", False, True),
        ("https://europe.directline.botframework.com/", False, True),
        ("https://directline.botframework.azure.us/", False, True),
        ("http://smba.trafficmanager.net/emea/", False, False),  # not https
        ("https://smba.trafficmanager.net:8443/emea/", False, False),
        ("https://user:pw@smba.trafficmanager.net/emea/", False, False),
        ("https://evil.trafficmanager.net/", False, False),  # anyone may name a trafficmanager host
        ("https://botframework.com.attacker.example/", False, False),
        ("https://attackerbotframework.com/", False, False),
        ("http://127.0.0.1:9000/", False, False),  # this machine, but authenticated
        ("http://127.0.0.1:9000/", True, True),
        ("http://localhost:9000/", True, True),
        ("http://[::1]:9000/", True, True),
        ("http://10.0.0.5:9000/", True, False),
        ("https://smba.trafficmanager.net:99999/", False, False),  # not a port
        ("", True, False),
        (None, True, False),
    ],
)
def test_reply_targets(url: str | None, loopback: bool, allowed: bool) -> None:
    assert access.reply_target_allowed(url, loopback=loopback) is allowed


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("203.0.113.7", False),
        ("::ffff:10.0.0.1", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_peers(remote: str | None, loopback: bool) -> None:
    assert access.is_loopback(remote) is loopback


def test_the_setting_opens_it_and_is_off_by_default(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    deps = Deps(pipeline=None, records=Records(database))  # type: ignore[arg-type]
    closed = teams_endpoint(Settings(), deps, database)
    opened = teams_endpoint(Settings(teams_allow_unauthenticated=True), deps, database)
    assert closed is not None and not closed.allow_unauthenticated and closed.reply_to_loopback
    assert opened is not None and opened.allow_unauthenticated
    assert (
        teams_endpoint(Settings(environment="production", teams_allow_unauthenticated=True), deps, database)
        is None
    )
