"""Admin commands, for any platform: `retrain`, `status`, `rollback`, `adapters`, `canary`, `gaps`,
`help`.

A platform adapter passes the caller's user id and the command text to `AdminCommands.handle` and
shows the `AdminReply` it gets back (plain text with bullets, fit for Slack and Teams alike). Only
users in the admin list may run them; anyone else gets a refusal, and the attempt is logged and
recorded in SQL with who, where and what (`record_refused`, at a bounded rate), which the
console's model page lists beside the admin actions.
Retrains are only queued here: the scheduler process runs them and posts the result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from feedback import canary as canary_rule
from feedback import queries, store
from feedback.db import Database
from feedback.errors import FeedbackError, RunPending
from feedback.models import RetrainRun
from model_server.errors import ModelServerError

log = logging.getLogger(__name__)

COMMANDS = ("retrain", "status", "rollback", "adapters", "canary", "gaps", "help")
GAPS_SHOWN = 10
CANARY_ACTIONS = ("status", "promote", "stop")
RECENT_RUNS = 5
MAX_FIGURES = 16

# Rolls the active adapter back for `actor` (the model server and SQL both); raises on failure.
Rollback = Callable[[str], object]
# Ends the open canary for `actor` ("promote" or "stop"; the model server and SQL both); raises on failure.
CanaryAction = Callable[[str, str], object]

REFUSAL = (
    "Sorry, only the bot's admins can run `{command}`. If you need a retrain or a rollback, ask one of them."
)
HELP = (
    "Admin commands:\n"
    "• retrain – queue a retrain on the feedback collected so far; the result is posted to the "
    "admin channel.\n"
    "• status – the adapter serving now, recent retrains, feedback counts and 👍 rate per adapter.\n"
    "• rollback – go back to the adapter that served before the current one.\n"
    "• adapters – every adapter version, the active and previous ones marked.\n"
    "• canary [status|promote|stop] – the candidate answering a share of conversations: its 👍 rate "
    "against live's; promote it now, or stop it (all traffic back to live at once, as `rollback` "
    "does during a canary).\n"
    "• gaps – questions the documents did not answer (retrieval misses), grouped by the page found instead."
)
NO_CANARY = "No canary is open: a candidate that passes the gate opens one (CANARY_SHARE)."


@dataclass
class AdminReply:
    text: str
    image: Path | None = None


class AdminCommands:
    """`rollback` defaults to flipping the pointer in SQL only (the previous adapter stays loaded in
    the model server); the composition root hands in the one that also loads it."""

    def __init__(
        self,
        database: Database,
        *,
        admins: Collection[str],
        rollback: Rollback | None = None,
        canary: CanaryAction | None = None,
    ) -> None:
        self.database = database
        self.admins = frozenset(admins)
        self._rollback = rollback or self._rollback_in_sql
        self._canary = canary or self._canary_in_sql

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    async def handle(self, user_id: str, text: str, *, platform: str = "", channel: str = "") -> AdminReply:
        """`platform` and `channel`: where the command was typed, recorded when it is refused."""
        words = text.strip().split()
        command = words[0].lower() if words else "help"
        if not self.is_admin(user_id):
            log.warning("admin command refused: user %s is not an admin (command %r)", user_id, command)
            await self._record_refusal(user_id, text.strip() or command, platform, channel)
            return AdminReply(REFUSAL.format(command=command if command in COMMANDS else text.strip()))
        if command not in COMMANDS:
            return AdminReply(f"I don't know the admin command `{command}`.\n\n{HELP}")
        if command == "help":
            return AdminReply(HELP)
        log.info("admin command %s by %s", command, user_id)
        if command == "rollback":
            return await self._rollback_command(user_id)
        if command == "canary":
            return await self.canary(user_id, words[1].lower() if len(words) > 1 else "status")
        work = {
            "retrain": self._retrain,
            "status": self._status,
            "adapters": self._adapters,
            "gaps": self._gaps,
        }[command]
        # The store is synchronous; keep the event loop free for other users meanwhile.
        return await asyncio.to_thread(work, user_id)

    async def refuse(self, user_id: str, text: str, *, platform: str, channel: str, reason: str) -> None:
        """Log and record a command refused before it reached `handle` (a channel that cannot prove
        who sent it): the claimed `user_id`, and `reason` beside the command."""
        log.warning("admin command refused (%s): user %r, command %r", reason, user_id, text.strip())
        await self._record_refusal(user_id, f"{text.strip()} ({reason})", platform, channel)

    async def _record_refusal(self, user_id: str, command: str, platform: str, channel: str) -> None:
        await asyncio.to_thread(
            record_refused,
            self.database,
            platform=platform or "unknown",
            user_id=user_id,
            place=channel,
            command=command,
        )

    # --- for callers that checked the admin themselves (the console's ADMIN_TOKEN login) ---------

    async def retrain_now(self, actor: str) -> AdminReply:
        """Queue a retrain requested by `actor`, like `retrain`, without the ADMIN_USERS check."""
        log.info("retrain queued by %s", actor)
        return await asyncio.to_thread(self._retrain, actor)

    async def roll_back(self, actor: str) -> AdminReply:
        """Roll back for `actor`, like `rollback`, without the ADMIN_USERS check."""
        log.info("rollback by %s", actor)
        return await self._rollback_command(actor)

    async def canary(self, actor: str, action: str) -> AdminReply:
        """`canary status|promote|stop` for `actor`, without the ADMIN_USERS check (`handle` made it)."""
        if action not in CANARY_ACTIONS:
            return AdminReply(f"`canary` takes {', '.join(CANARY_ACTIONS)}, not `{action}`.")
        if action == "status":
            return await asyncio.to_thread(self._canary_status)
        with self.database.reader() as session:
            canary = queries.open_canary(session)
        if canary is None:
            return AdminReply(NO_CANARY)
        log.info("canary %s by %s", action, actor)
        try:
            await asyncio.to_thread(self._canary, action, actor)
        except (FeedbackError, ModelServerError) as exc:
            return AdminReply(f"The canary was left as it was: {exc}")
        except Exception:
            log.exception("canary %s by %s failed", action, actor)
            return AdminReply("The canary was left as it was. The bot's log has the details.")
        if action == "promote":
            return AdminReply(f"Promoted: {canary.candidate} answers every question now.")
        return AdminReply(
            f"Stopped: every question goes to {canary.live} again; {canary.candidate} is rolled back."
        )

    # --- the commands ----------------------------------------------------------------------------

    def _retrain(self, user_id: str) -> AdminReply:
        try:
            with self.database.writer() as session:
                run = store.queue_run(session, trigger="admin", requested_by=user_id, if_idle=True)
        except RunPending as exc:
            return AdminReply(f"{exc} Try again once it has finished; `status` shows how it is going.")
        return AdminReply(
            f"Retrain #{run.id} is queued. The scheduler starts it within a minute (when `chatbot "
            "scheduler` is running) and posts the result to the admin channel."
        )

    def _status(self, _: str) -> AdminReply:
        with self.database.reader() as session:
            active = queries.active_adapter(session)
            previous = queries.rollback_target(session)[1]
            runs = queries.recent_runs(session, limit=RECENT_RUNS)
            votes = queries.votes_by_adapter(session)
            corrections = queries.correction_counts(session)
        lines = [
            f"Serving: {active.name} (active since {when(active.activated_at)})"
            + f"; a rollback goes to {previous or 'the base model'}."
            if active
            else "Serving: the base model (no adapter has been promoted yet)."
        ]
        lines.append("Recent retrains:" if runs else "Recent retrains: none yet.")
        lines += [f"• {run_line(run)}" for run in runs]
        up, down = sum(u for _, u, _ in votes), sum(d for _, _, d in votes)
        counts = ", ".join(f"{corrections.get(s, 0)} {s}" for s in ("pending", "approved", "rejected"))
        lines.append(f"Feedback: {up + down} votes ({up} 👍, {down} 👎); corrections: {counts}.")
        if votes:
            lines.append("👍 rate by adapter:")
            lines += [f"• {name}: {u / (u + d):.0%} of {u + d} votes" for name, u, d in votes]
        return AdminReply("\n".join(lines))

    def _adapters(self, _: str) -> AdminReply:
        with self.database.reader() as session:
            rows = queries.list_adapters(session)
            possible, previous = queries.rollback_target(session)
        if not rows:
            return AdminReply("No adapter versions yet: the base model is serving.")
        lines = ["Adapter versions (newest first):"]
        for row in reversed(rows):
            marks = ["ACTIVE"] if row.status == "active" else []
            if possible and row.name == previous:
                marks.append("previous")
            mark = f" [{', '.join(marks)}]" if marks else ""
            created = when(row.created_at)
            lines.append(f"• {row.name}{mark} – {row.status}, from {row.parent or 'base'}, {created}")
        if possible and previous is None:
            lines.append("A rollback goes back to the base model.")
        return AdminReply("\n".join(lines))

    def _gaps(self, _: str) -> AdminReply:
        with self.database.reader() as session:
            gaps = queries.documentation_gaps(queries.misses(session))
        if not gaps:
            return AdminReply(
                "No documentation gaps found yet: no corrected or 👎 answer lacked its passage."
            )
        lines = ["Questions the documents did not answer, by the page search found instead:"]
        for place, asked in gaps[:GAPS_SHOWN]:
            lines.append(f"• {place} ({len(asked)}): " + "; ".join(f"“{q}”" for q in asked[:5]))
        if len(gaps) > GAPS_SHOWN:
            lines.append(f"… and {len(gaps) - GAPS_SHOWN} more groups on the console's quality page.")
        return AdminReply("\n".join(lines))

    def _canary_status(self) -> AdminReply:
        now = canary_rule.current(self.database)
        if now is None:
            return AdminReply(NO_CANARY)
        return AdminReply(now.summary())

    async def _rollback_command(self, user_id: str) -> AdminReply:
        with self.database.reader() as session:
            before = queries.active_adapter(session)
            canary = queries.open_canary(session)
        if canary is not None:  # the candidate is what came last: all traffic back to live at once
            return await self.canary(user_id, "stop")
        try:
            await asyncio.to_thread(self._rollback, user_id)
        except (FeedbackError, ModelServerError) as exc:
            return AdminReply(f"Nothing was rolled back: {exc}")
        except Exception:
            log.exception("rollback by %s failed", user_id)
            return AdminReply(
                "The rollback failed and the active adapter was left as it was. The bot's log has "
                "the details."
            )
        with self.database.reader() as session:
            now = queries.active_adapter(session)
        was = before.name if before else "the base model"
        return AdminReply(f"Rolled back: {now.name if now else 'the base model'} is serving now (was {was}).")

    def _rollback_in_sql(self, actor: str) -> object:
        with self.database.writer() as session:
            return store.rollback_adapter(session, actor=actor, reason="admin command")

    def _canary_in_sql(self, action: str, actor: str) -> object:
        """Without a model server to load into: SQL's pointer and the canary's record only."""
        with self.database.writer() as session:
            canary = queries.open_canary(session)
            if canary is None:
                return None
            reason = f"{'Promoted' if action == 'promote' else 'Stopped'} by {actor}."
            if action == "promote":
                store.activate_adapter(session, name=canary.candidate, actor=actor, reason=reason)
                return store.close_canary(
                    session, canary_id=canary.id or 0, status="promoted", reason=reason, actor=actor
                )
            store.close_canary(
                session, canary_id=canary.id or 0, status="stopped", reason=reason, actor=actor
            )
            return store.mark_adapter_failed(session, name=canary.candidate, metrics={"canary": reason})


def record_refused(database: Database, *, platform: str, user_id: str, place: str, command: str) -> None:
    """Record a refused admin attempt for the console to show; a failure to record it is logged,
    never passed on (the refusal itself stands)."""
    try:
        with database.writer() as session:
            recorded = store.record_refusal(
                session, platform=platform, user_id=user_id, place=place, command=command
            )
    except Exception:
        log.exception("recording a refused admin attempt by %s failed", user_id)
        return
    if not recorded:
        log.debug("refused admin attempt by %r not recorded: over the per-minute cap", user_id)


# --- formatting shared with the retrain notifier -----------------------------------------------


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def run_line(run: RetrainRun) -> str:
    """One line about a run: number, state, outcome, who asked."""
    who = f"asked by {run.requested_by}" if run.requested_by else run.trigger
    head = f"#{run.id} {run.status}"
    if run.candidate:
        head += f" {run.candidate}"
    detail = run.error or run.decision
    at = when(run.finished_at or run.started_at or run.created_at)
    return f"{head} ({who}, {at})" + (f": {detail}" if detail else "")


def figure(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4g}"


def run_summary(run: RetrainRun) -> str:
    """What a finished retrain decided, with its figures; posted to the admin channel."""
    verdict = {
        "promoted": f"promoted {run.candidate}: it is serving now",
        "rejected": f"candidate {run.candidate or ''} rejected; the active adapter keeps serving",
        "skipped": "skipped: nothing new to learn from",
        "failed": "failed; the active adapter keeps serving",
        "canary": f"{run.candidate} passed the gate and answers a share of conversations beside the "
        "live model until the votes decide (`canary status`)",
        "rolled_back": f"{run.candidate} passed the gate but was rolled back during its canary; the live "
        "model keeps serving",
    }.get(run.status, run.status)
    lines = [f"Retrain #{run.id} ({run.requested_by or run.trigger}): {verdict}."]
    if run.error:
        lines.append(f"Reason: {run.error}")
    if run.decision:
        lines.append(f"Decision: {run.decision}")
    flat = list(flatten(run.metrics))
    if flat:
        lines.append("Figures:")
        lines += [f"• {name}: {figure(value)}" for name, value in flat[:MAX_FIGURES]]
        if len(flat) > MAX_FIGURES:
            lines.append(f"• … and {len(flat) - MAX_FIGURES} more (stored with the run)")
    return "\n".join(lines)


def flatten(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += flatten(value, f"{name}.")
        elif not isinstance(value, list):  # per-step series (the loss curve) are drawn, not listed
            out.append((name, value))
    return out
