"""Refused admin attempts are recorded in SQL with who, where and what: a non-admin's `/chatbot
retrain` through the real Bolt app, a Teams admin command through the real botbuilder adapter, the
console's admin actions without a login or with a stale form and its wrong tokens; and the console's
model page lists them beside the adapter switches."""

from __future__ import annotations

from pathlib import Path

from bot.admin import AdminCommands
from bot.teams import cards
from feedback import queries, store
from feedback.db import Database
from tests.support import feedback_seed as seed
from tests.support.console import ADMIN, running_console
from tests.support.slack_harness import running_bot
from tests.support.teams_activities import ADA, GRACE, PERSONAL
from tests.support.teams_harness import running_teams_bot


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
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id], authenticated=True) as bot:
        await bot.ask("retrain", user=GRACE)
        [(platform, user, place, command)] = refusals(bot.database)
        assert (platform, place, command) == ("teams", PERSONAL, "retrain")
        assert user in (GRACE.aad_id, GRACE.teams_id)


async def test_a_teams_admin_command_without_bot_framework_auth_is_recorded_with_why(
    tmp_path: Path,
) -> None:
    async with running_teams_bot(tmp_path, admin_ids=[ADA.aad_id]) as bot:
        reply = await bot.ask("rollback", user=ADA)  # an admin's id, but nothing proves it
        assert reply.activity["text"] == cards.ADMIN_NEEDS_AUTH
        await bot.ask("retrain", user=GRACE)
        assert sorted(refusals(bot.database)) == [
            ("teams", ADA.aad_id, PERSONAL, "rollback (not authenticated)"),
            ("teams", GRACE.aad_id, PERSONAL, "retrain (not authenticated)"),
        ]


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


async def test_refused_console_admin_attempts_are_recorded_at_a_bounded_rate(
    database: Database, tmp_path: Path
) -> None:
    async with running_console(database, tmp_path) as c:
        await c.http.post("/console/model/retrain", data={"csrf": "x"})  # not signed in
        await c.login(token="a-guess")
        await c.login()
        await c.http.post("/console/model/rollback", data={"csrf": "stale"})
        assert refusals(database) == [
            ("web", ADMIN, "/console/model/rollback", "rollback (stale form or another site)"),
            ("web", "127.0.0.1", "/console/login", "sign in (wrong token)"),
            ("web", "127.0.0.1", "/console/model/retrain", "retrain (not signed in)"),
        ]
        c.http.cookies.clear()
        for _ in range(20):
            response = await c.http.post("/console/review/1/approve", data={"csrf": "x"})
            assert response.status_code == 401
        from_here = [r for r in refusals(database) if r[1] == "127.0.0.1"]
        assert len(from_here) == store.REFUSALS_PER_SENDER
