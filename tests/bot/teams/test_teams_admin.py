"""Admin commands as messages to the bot in Teams, through the real `bot.admin.AdminCommands`: for
the ids in ADMIN_USERS (an Azure AD object id or a Teams user id), refused for everyone else. The
bot runs authenticated (tokens checked against a local stand-in for Microsoft's keys): admin
commands never run without a valid token (tests/bot/teams/test_teams_access.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.admin import HELP, REFUSAL
from feedback import queries
from feedback.db import Database
from tests.support.teams_activities import ADA, GRACE
from tests.support.teams_harness import running_teams_bot


def runs(database: Database) -> list[tuple[str, str | None]]:
    with database.reader() as session:
        return [(r.trigger, r.requested_by) for r in queries.recent_runs(session)]


async def test_an_admin_by_aad_id_gets_the_status(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], authenticated=True) as bot:
        reply = await bot.ask("status")
        assert reply.activity["text"].startswith("Serving: the base model")
        assert bot.model.requests == []  # a command, not a question for the model


async def test_an_admin_by_teams_id_can_queue_a_retrain(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.teams_id], authenticated=True) as bot:
        reply = await bot.ask("retrain")
        assert "is queued" in reply.activity["text"]
        assert runs(bot.database) == [("admin", ADA.teams_id)]


async def test_anyone_else_is_refused_and_nothing_is_queued(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], authenticated=True) as bot:
        reply = await bot.ask("retrain", user=GRACE)
        assert reply.activity["text"] == REFUSAL.format(command="retrain")
        assert runs(bot.database) == []
        assert bot.model.requests == []


async def test_a_question_that_starts_like_a_command_is_answered(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], authenticated=True) as bot:
        reply = await bot.ask("status of my leave request?")
        assert reply.activity["attachments"]  # the answer card
        assert len(bot.model.requests) == 1


async def test_help_for_an_admin_lists_the_admin_commands(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], authenticated=True) as bot:
        reply = await bot.ask("help")
        assert reply.activity["text"] == HELP


@dataclass
class Reply:
    text: str
    image: Path | None = None


class ChartingAdmin:
    """Answers every admin with a loss curve, as a finished retrain's report does."""

    def __init__(self, chart: Path) -> None:
        self.chart = chart

    def is_admin(self, user_id: str) -> bool:
        return user_id == ADA.aad_id

    async def handle(self, user_id: str, text: str, *, platform: str = "", channel: str = "") -> Reply:
        return Reply(f"{text} for {user_id}", self.chart)


async def test_a_reply_with_a_chart_shows_it_inline(tmp_path: Path) -> None:
    chart = tmp_path / "loss.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n-not-really")
    async with running_teams_bot(tmp_path, admin=ChartingAdmin(chart), authenticated=True) as bot:
        reply = await bot.ask("status")
        assert reply.activity["text"] == f"status for {ADA.aad_id}"
        [image] = reply.activity["attachments"]
        assert image["contentType"] == "image/png" and image["contentUrl"].startswith(
            "data:image/png;base64,"
        )
