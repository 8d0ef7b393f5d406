"""`/chatbot retrain|status|rollback|adapters` through the real Bolt app (signed slash commands over
HTTP), and retrain results posted to the admin channel with the loss curve uploaded, against the
local Slack Web API server."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.admin import AdminCommands
from bot.slack.admin_channel import AdminChannel, sync_web_client
from feedback import queries, store
from retrain.registry import plot_loss_curve
from retrain.schedule import Jobs
from tests.support import feedback_seed as seed
from tests.support.paths import REPO
from tests.support.schedule_worker import FakeRetrain
from tests.support.slack_api import BOT_TOKEN
from tests.support.slack_harness import Bot, running_bot

ADMIN, ADMIN_CHANNEL = "UADMIN", "CADMINS"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(tmp_path) as running:
        running.deps.admin = AdminCommands(running.database, admins=[ADMIN])
        yield running


async def command(bot: Bot, text: str, *, user: str = ADMIN) -> tuple[dict, str | None]:
    """The acknowledgement, and the reply that followed through response_url (None for none)."""
    before = len(bot.slack.responses)
    response = await bot.send_command("/chatbot", text, user=user, channel="C1")
    assert response.status_code == 200
    ack = response.json()
    if not ack["text"].startswith("Working on"):
        return ack, None
    deadline = time.monotonic() + 10
    while len(bot.slack.responses) == before:
        assert time.monotonic() < deadline, "no reply through response_url"
        await asyncio.sleep(0.01)
    [reply] = bot.slack.responses[before:]
    assert reply["response_type"] == "ephemeral"
    return ack, reply["text"]


async def test_a_non_admins_retrain_is_refused_ephemerally_and_logged(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.admin"):
        ack, reply = await command(bot, "retrain", user="UINTRUDER")
    assert ack["response_type"] == "ephemeral" and reply is None
    assert "only the bot's admins can run `retrain`" in ack["text"]
    assert any("UINTRUDER" in r.getMessage() for r in caplog.records)
    with bot.database.reader() as s:
        assert queries.recent_runs(s) == []


async def test_an_admins_retrain_is_queued(bot: Bot) -> None:
    ack, reply = await command(bot, "retrain")
    assert ack["response_type"] == "ephemeral" and ack["text"] == "Working on `/chatbot retrain`…"
    with bot.database.reader() as s:
        [run] = queries.recent_runs(s)
    assert (run.status, run.requested_by) == ("queued", ADMIN)
    assert reply is not None and f"Retrain #{run.id} is queued" in reply
    _, again = await command(bot, "retrain")
    assert again is not None and f"Retrain #{run.id} is already queued" in again


async def test_status_and_adapters(bot: Bot) -> None:
    seed.adapters(bot.database, "kb-v1", "kb-v2")
    seed.votes(bot.database, adapter="kb-v2", up=3, down=1)
    _, status = await command(bot, "status")
    assert status is not None and "Serving: kb-v2" in status and "• kb-v2: 75% of 4 votes" in status
    _, listing = await command(bot, "adapters")
    assert listing is not None and "• kb-v2 [ACTIVE]" in listing and "• kb-v1 [previous]" in listing


async def test_rollback_is_acknowledged_before_the_work_is_done(bot: Bot) -> None:
    seed.adapters(bot.database, "kb-v1", "kb-v2")
    acked = threading.Event()

    def slow_rollback(actor: str) -> None:  # e.g. the model server loading the previous adapter
        assert acked.wait(10), "the command was not acknowledged before the rollback"
        with bot.database.writer() as s:
            store.rollback_adapter(s, actor=actor)

    bot.deps.admin = AdminCommands(bot.database, admins=[ADMIN], rollback=slow_rollback)
    response = await bot.send_command("/chatbot", "rollback", user=ADMIN, channel="C1")
    acked.set()
    assert response.json()["text"] == "Working on `/chatbot rollback`…"
    [reply] = [r async for r in _responses(bot, 1)]
    assert reply["text"] == "Rolled back: kb-v1 is serving now (was kb-v2)."


async def _responses(bot: Bot, count: int) -> AsyncIterator[dict]:
    deadline = time.monotonic() + 10
    while len(bot.slack.responses) < count:
        assert time.monotonic() < deadline, "no reply through response_url"
        await asyncio.sleep(0.01)
    for response in bot.slack.responses:
        yield response


async def test_help_shows_admin_commands_to_admins_only(bot: Bot) -> None:
    mine, _ = await command(bot, "help")
    theirs, _ = await command(bot, "", user="U1")
    assert "How to ask me" in mine["text"] and "For admins" in mine["text"] and "• rollback" in mine["text"]
    assert "How to ask me" in theirs["text"] and "For admins" not in theirs["text"]


async def test_admin_commands_without_admins_configured(bot: Bot) -> None:
    bot.deps.admin = None
    ack, reply = await command(bot, "status")
    assert reply is None and "Admin commands are not set up" in ack["text"]


async def test_a_retrain_result_is_posted_with_its_loss_curve(bot: Bot, tmp_path: Path) -> None:
    """The scheduler's job runs a queued retrain; the result and the loss curve reach the channel."""
    curve = plot_loss_curve(
        [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 1.9}, {"step": 2, "eval_loss": 2.0}],
        tmp_path / "loss_curve.png",
        title="kb-v1",
    )
    assert curve is not None
    notify = AdminChannel(sync_web_client(bot_token=BOT_TOKEN, api_url=bot.slack.api_url), ADMIN_CHANNEL)
    jobs = Jobs(bot.database, FakeRetrain(bot.database, loss_curve=curve), notify=notify)
    with bot.database.writer() as s:
        queued = store.queue_run(s, trigger="admin", requested_by=ADMIN)

    [run] = await asyncio.to_thread(jobs.run_queued)  # the scheduler's thread, not the event loop

    assert run.id == queued.id and run.status == "promoted"
    [message] = bot.slack.called("chat.postMessage", channel=ADMIN_CHANNEL)
    assert f"Retrain #{run.id} ({ADMIN}): promoted kb-v{run.id}: it is serving now." in message["text"]
    assert "• gate.f1: 0.61" in message["text"]
    [asked] = bot.slack.called("files.getUploadURLExternal")
    assert int(asked["length"]) == curve.stat().st_size
    [(file_id, data)] = bot.slack.uploads.items()
    assert data == curve.read_bytes() and data.startswith(b"\x89PNG")
    [done] = bot.slack.called("files.completeUploadExternal", channel_id=ADMIN_CHANNEL)
    assert bot.slack.files[file_id]["channels"] == [ADMIN_CHANNEL]
    assert f"retrain #{run.id}" in bot.slack.files[file_id]["title"]
    assert done["files"]


async def test_a_failed_run_is_posted_without_an_image(bot: Bot) -> None:
    notify = AdminChannel(sync_web_client(bot_token=BOT_TOKEN, api_url=bot.slack.api_url), ADMIN_CHANNEL)
    jobs = Jobs(bot.database, FakeRetrain(bot.database, fail=OSError(28, "No space left")), notify=notify)
    with bot.database.writer() as s:
        store.queue_run(s, trigger="schedule")
    [run] = await asyncio.to_thread(jobs.run_queued)
    assert run.status == "failed"
    [message] = bot.slack.called("chat.postMessage", channel=ADMIN_CHANNEL)
    assert "failed; the active adapter keeps serving" in message["text"] and "Reason:" in message["text"]
    assert "Reason: The disk is full; free some space and queue the run again." in message["text"]
    assert not bot.slack.called("files.getUploadURLExternal")


def test_the_manifest_lets_the_bot_upload_loss_curves() -> None:
    import yaml

    manifest = yaml.safe_load((REPO / "slack" / "manifest.yaml").read_text())
    assert "files:write" in manifest["oauth_config"]["scopes"]["bot"]
    assert "retrain" in manifest["features"]["slash_commands"][0]["usage_hint"]
