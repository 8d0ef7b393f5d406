"""Refused admin commands are recorded in SQL with who, where and what: a non-admin's `/chatbot
retrain` through the real Bolt app, a Teams admin command through the real botbuilder adapter; and
the console's model page lists them beside the adapter switches."""

from __future__ import annotations

from pathlib import Path

import feedback_seed as seed
from console_helpers import running_console
from slack_server import running_bot
from teams_server import ADA, GRACE, PERSONAL, running_teams_bot

from bot.admin import AdminCommands
from feedback import queries
from feedback.db import Database


def refusals(database: Database) -> list[tuple[str, str, str, str]]:
    with database.reader() as s:
        return [(r.platform, r.user_id, r.place, r.command) for r in queries.recent_refusals(s)]


async def test_a_non_admins_slash_command_is_recorded(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        bot.deps.admin = AdminCommands(bot.database, admins=["UADMIN"])
        response = await bot.send_command("/chatbot", "rollback now", user="UINTRUDER", channel="C42")
        assert "only the bot's admins" in response.json()["text"]
        assert refusals(bot.database) == [("slack", "UINTRUDER", "C42", "rollback now")]
        await bot.send_command("/chatbot", "status", user="UADMIN", channel="C42")
        assert len(refusals(bot.database)) == 1  # an admin's command is no refusal


async def test_a_teams_admin_command_from_anyone_else_is_recorded(tmp_path: Path) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id]) as bot:
        await bot.ask("retrain", user=GRACE)
        [(platform, user, place, command)] = refusals(bot.database)
        assert (platform, place, command) == ("teams", PERSONAL, "retrain")
        assert user in (GRACE.aad_id, GRACE.teams_id)


async def test_the_model_page_lists_refusals_beside_the_admin_actions(
    database: Database, tmp_path: Path
) -> None:
    seed.adapters(database, "kb-v1", "kb-v2")
    admin = AdminCommands(database, admins=["UADMIN"])
    await admin.handle("UINTRUDER", "rollback", platform="slack", channel="C<script>")
    async with running_console(database, tmp_path) as c:
        await c.login()
        page = (await c.http.get("/console/model")).text
    assert 'data-testid="admin-action-row" data-action="promote"' in page
    [row] = [line for line in page.splitlines() if 'data-testid="refused-row"' in line]
    assert 'data-platform="slack" data-user="UINTRUDER"' in row
    assert "C&lt;script&gt;" in page and "<code>rollback</code>" in page
