"""A candidate that passed the gate earns its traffic. It starts as a canary serving a share of the
conversation threads (`bot.routing`); the scheduler looks at the 👍/👎 both sides got since
(`feedback.canary`) and promotes it or rolls it back; at the end of its looks or its window it waits for
an admin. Admins can promote or stop it at any time, and a rollback during a canary stops it. The
state lives in SQL (`Canary`), so a restarted scheduler or bot, or another replica, carries on.

    canary = start(database, client, candidate="kb-v3", path=..., live="kb-v2", share=0.2, run_id=7)
    check(database, client, RolloutConfig())   # every minute, in the scheduler
    promote_now(database, client, actor="U1")  # or stop(database, client, actor="U1")
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from feedback import errors, queries, store
from feedback.canary import Policy, look, standing
from feedback.db import Database
from feedback.models import Canary, utcnow
from model_server.client import ModelClient
from retrain import promote

log = logging.getLogger(__name__)
AUTOMATIC = "canary"  # the actor recorded for the votes' own decisions


@dataclass(frozen=True)
class RolloutConfig:
    share: float = 0.2  # CANARY_SHARE: 0 promotes a passing candidate at once
    policy: Policy = field(default_factory=Policy)
    window: timedelta = timedelta(days=7)  # CANARY_WINDOW_HOURS: then admins decide
    keep: int = 2  # KEEP_LOADED_ADAPTERS


def start(
    database: Database,
    client: ModelClient,
    *,
    candidate: str,
    path: str,
    live: str,
    share: float,
    run_id: int | None,
) -> Canary:
    """Load the candidate, check it answers, then open its canary (refused while one is open)."""
    promote.make_servable(client, candidate, path)
    note = f"{candidate} serves {share:.0%} of conversation threads beside {live}; the votes decide."
    with database.writer() as session:
        canary = store.open_canary(
            session, candidate=candidate, live=live, share=share, run_id=run_id, note=note
        )
    log.info("canary #%s: %s", canary.id, note)
    return canary


def _open(database: Database) -> Canary:
    with database.reader() as session:
        canary = queries.open_canary(session)
    if canary is None:
        raise errors.InvalidTransition("No canary is open.")
    return canary


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def check(database: Database, client: ModelClient, config: RolloutConfig) -> Canary | None:
    """Look at the open canary's votes when a planned look is due, and act on the verdict."""
    with database.reader() as session:
        canary = queries.open_canary(session)
    if canary is None or canary.status != "running":
        return canary
    now = standing(database, canary)
    verdict, looks_done = look(now.candidate, now.live, config.policy, looks_done=canary.looks_done)
    cid = canary.id or 0
    if verdict is None:
        if utcnow() - _aware(canary.started_at) > config.window:
            hours = config.window.total_seconds() / 3600
            reason = (
                f"No decision within {hours:g} hours: an admin decides ({now.candidate.votes} votes on it)."
            )
            with database.writer() as session:
                return store.mark_undecided(session, canary_id=cid, reason=reason)
        return canary
    if verdict.action == "rollback":
        return stop(
            database, client, actor=AUTOMATIC, reason=f"Rolled back: {verdict.reason}", keep=config.keep
        )
    if verdict.action == "promote":
        return promote_now(
            database, client, actor=AUTOMATIC, reason=f"Promoted: {verdict.reason}", keep=config.keep
        )
    with database.writer() as session:
        canary = store.canary_step(
            session, canary_id=cid, text=f"Look {looks_done}: {verdict.reason}", looks_done=looks_done
        )
        if verdict.action == "undecided":
            canary = store.mark_undecided(
                session, canary_id=cid, reason=f"An admin decides: {verdict.reason}"
            )
    return canary


def promote_now(
    database: Database, client: ModelClient, *, actor: str, reason: str | None = None, keep: int = 2
) -> Canary:
    """All traffic to the candidate: it becomes the active adapter, then the canary closes."""
    canary = _open(database)
    reason = reason or f"Promoted by {actor}."
    promote.promote(database, client, name=canary.candidate, actor=actor, keep=keep, reason=reason)
    with database.writer() as session:
        return store.close_canary(
            session, canary_id=canary.id or 0, status="promoted", reason=reason, actor=actor
        )


def stop(
    database: Database, client: ModelClient, *, actor: str, reason: str | None = None, keep: int = 2
) -> Canary:
    """All traffic back to live at once (the bots read SQL), then the candidate is marked and unloaded."""
    canary = _open(database)
    automatic = actor == AUTOMATIC
    reason = reason or f"Stopped by {actor}: all traffic back to {canary.live}."
    with database.writer() as session:
        closed = store.close_canary(
            session,
            canary_id=canary.id or 0,
            status="rolled_back" if automatic else "stopped",
            reason=reason,
            actor=actor,
        )
    with database.writer() as session:
        store.mark_adapter_failed(session, name=canary.candidate, metrics={"canary": reason})
    promote.tidy(database, client, keep)
    log.info("canary #%s of %s closed: %s", closed.id, closed.candidate, reason)
    return closed
