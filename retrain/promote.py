"""Hot swap: make an adapter version serve, go back to the previous one, keep the server in step.

The order is what makes a swap safe. An adapter is loaded into the model server under its own,
new name and checked with one real request on every model server replica the bots use; only then
is the pointer in SQL flipped (one transaction, `feedback.store`), and the bots, which read that
pointer, send their next question to the new name. A replica that cannot serve it blocks a
promotion; a rollback needs one replica serving (the others load it on their next reconcile).
The previous version stays loaded for an instant rollback; versions beyond `keep` are unloaded
afterwards (never the one just replaced: a bot replica may still be sending to it
for the few seconds it caches the pointer). The model server forgets runtime-loaded adapters
when it restarts, so `reconcile` loads what SQL says should be there; `chatbot model-server`
calls it after every (re)start and periodically.

These are the admin functions too: `promote`, `rollback`, `reconcile`; listing is
`feedback.queries.list_adapters` / `active_adapter`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from feedback import errors as feedback_errors
from feedback import queries, store
from feedback.db import Database
from feedback.models import AdapterVersion
from model_server import replicas
from model_server.client import ModelClient
from model_server.errors import ModelServerError, ModelServerRefused
from retrain.errors import PromotionFailed

log = logging.getLogger(__name__)

PROBE = [{"role": "user", "content": "Say OK."}]


@dataclass
class ReconcileReport:
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"loaded {', '.join(self.loaded)}" if self.loaded else ""]
        parts.append(f"unloaded {', '.join(self.unloaded)}" if self.unloaded else "")
        parts += self.problems
        return "; ".join(p for p in parts if p) or "already in step"


def ensure_loaded(client: ModelClient, name: str, path: str) -> bool:
    """Load `name` unless the server serves it already; True if it was loaded now."""
    if name in client.models():
        return False
    if not Path(path).is_dir():
        raise PromotionFailed(f"The folder of adapter {name} is missing ({path}).")
    log.info("loading adapter %s from %s", name, path)
    client.load_adapter(name, str(Path(path).resolve()))
    return True


def probe(client: ModelClient, name: str) -> None:
    """One real request through the adapter: the server must answer with it."""
    result = client.chat(PROBE, model=name, max_tokens=4, logprobs=False)
    if result.finish_reason is None and not result.text:
        raise PromotionFailed(f"The model server answered {name}'s test request with nothing.")


def make_servable(client: ModelClient, name: str, path: str) -> None:
    """Loaded and answering on every replica behind `client`, or PromotionFailed naming the first
    that would not."""
    try:
        ensure_loaded(client, name, path)
        for replica in replicas.members(client):
            probe(replica, name)
    except ModelServerError as exc:
        raise PromotionFailed(f"The model server would not serve {name}: {exc}") from exc


def make_servable_somewhere(client: ModelClient, name: str, path: str) -> list[str]:
    """Loaded and answering on as many replicas as will; PromotionFailed only where none will.
    The problems with the others, for the log (their supervisors load it when they are back)."""
    problems: list[str] = []
    every = replicas.members(client)
    for replica in every:
        try:
            make_servable(replica, name, path)
        except PromotionFailed as exc:
            problems.append(f"{replica.base_url}: {exc}")
    if len(problems) == len(every):
        raise PromotionFailed("; ".join(problems))
    for problem in problems:
        log.warning("%s", problem)
    return problems


def promote(
    database: Database,
    client: ModelClient,
    *,
    name: str,
    actor: str,
    keep: int = 2,
    reason: str | None = None,
) -> AdapterVersion:
    """Serve `name` from the next question on. SQL changes only once the server answered with it."""
    with database.reader() as session:
        adapter = queries.get_adapter(session, name)
    if adapter is None:
        raise feedback_errors.UnknownAdapter(name)
    if adapter.status == "active":
        raise feedback_errors.InvalidTransition(f"Adapter {name!r} is already active.")
    if adapter.status == "failed":
        raise feedback_errors.InvalidTransition(
            f"Adapter {name!r} failed validation and cannot be made active."
        )
    make_servable(client, name, adapter.path)
    with database.writer() as session:
        promoted = store.activate_adapter(session, name=name, actor=actor, reason=reason)
    assert promoted is not None
    log.info("adapter %s is active (by %s)", name, actor)
    tidy(database, client, keep)
    return promoted


def rollback(
    database: Database, client: ModelClient, *, actor: str, keep: int = 2, reason: str | None = None
) -> AdapterVersion | None:
    """Go back to the version active before the current one (None: the base model), loading it
    first if the server lost it."""
    with database.reader() as session:
        possible, target = queries.rollback_target(session)
        previous = queries.get_adapter(session, target) if target else None
    if not possible:
        raise feedback_errors.InvalidTransition("The base model is serving; there is nothing to roll back.")
    if previous is not None:
        make_servable_somewhere(client, previous.name, previous.path)
    with database.writer() as session:
        now = store.rollback_adapter(session, actor=actor, reason=reason)
    log.info("rolled back to %s (by %s)", now.name if now else "the base model", actor)
    tidy(database, client, keep)
    return now


def tidy(database: Database, client: ModelClient, keep: int) -> None:
    """After a swap: unload what is beyond `keep` (at least 2). The swap itself is done, so a
    failure here is logged and left to the next reconcile."""
    try:
        reconcile(database, client, keep=max(keep, 2))
    except ModelServerError as exc:
        log.warning("could not tidy the model server's adapters after the swap: %s", exc)


def reconcile(database: Database, client: ModelClient, *, keep: int = 2) -> ReconcileReport:
    """Make the server's loaded adapters match SQL: load the active version and the most recent
    previous ones (`keep` in all) where missing; unload retired and failed versions beyond that.
    Candidates (a retrain evaluating one) and adapters SQL does not know are left alone."""
    report = ReconcileReport()
    with database.reader() as session:
        wanted = queries.loaded_versions(session, keep)
        known = {a.name: a.status for a in queries.list_adapters(session)}
    served = set(client.models())
    for adapter in wanted:
        if adapter.name in served:
            continue
        try:
            if ensure_loaded(client, adapter.name, adapter.path):
                report.loaded.append(adapter.name)
        except (PromotionFailed, ModelServerRefused) as exc:
            # the active one missing is serious: the bot falls back to errors until it is loaded
            log.error("could not load adapter %s: %s", adapter.name, exc)
            report.problems.append(f"{adapter.name} not loaded: {exc}")
    keep_names = {a.name for a in wanted}
    for name in sorted(served):
        if known.get(name) in ("retired", "failed") and name not in keep_names:
            try:
                client.unload_adapter(name)
                report.unloaded.append(name)
            except ModelServerRefused as exc:
                report.problems.append(f"{name} not unloaded: {exc}")
    if report.loaded or report.unloaded or report.problems:
        log.info("reconciled the model server: %s", report.summary())
    return report
