"""Promotion, rollback and reconciliation against the real embedded engine and the real store:
exactly one adapter is active at every step, the server serves what SQL says, and SQL never
points at an adapter the server would not serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback import errors, queries, store
from feedback.db import Database
from model_server.client import ModelClient
from retrain import promote
from retrain.errors import PromotionFailed
from tests.support.lora import make_lora

pytestmark = pytest.mark.slow


def _active(database: Database) -> str | None:
    with database.reader() as session:
        rows = queries.list_adapters(session)
    active = [a.name for a in rows if a.status == "active"]
    assert len(active) <= 1
    return active[0] if active else None


def test_promote_then_rollback_keeps_exactly_one_active(
    database: Database, client: ModelClient, versions: list[str]
) -> None:
    v1, v2, v3 = versions
    assert v1 not in client.models()
    promote.promote(database, client, name=v1, actor="alice", keep=2)
    assert _active(database) == v1 and v1 in client.models()

    promote.promote(database, client, name=v2, actor="bob", keep=2)
    assert _active(database) == v2
    assert {v1, v2} <= set(client.models())  # the previous one stays for an instant rollback

    promote.promote(database, client, name=v3, actor="carol", keep=2)
    served = set(client.models())
    assert _active(database) == v3 and {v2, v3} <= served and v1 not in served  # bounded

    back = promote.rollback(database, client, actor="dave", keep=2)
    assert back is not None and back.name == v2 and _active(database) == v2
    again = promote.rollback(database, client, actor="erin", keep=2)  # v1 was unloaded: loaded again
    assert again is not None and again.name == v1 and v1 in client.models()
    assert client.chat([{"role": "user", "content": "Hi"}], model=v1, max_tokens=3).text

    with database.reader() as session:
        history = queries.adapter_history(session)
    assert [(c.action, c.actor, c.to_name) for c in history[:2]] == [
        ("rollback", "erin", v1),
        ("rollback", "dave", v2),
    ]


def test_an_adapter_the_server_refuses_is_never_made_active(
    database: Database, client: ModelClient, versions: list[str], base_model_dir: Path, tmp_path: Path
) -> None:
    v1 = versions[0]
    promote.promote(database, client, name=v1, actor="alice")
    too_big = make_lora(base_model_dir, tmp_path / "too-big", rank=32)  # the engine's limit is 16
    name = f"{v1}-big"
    with database.writer() as session:
        store.register_adapter(session, name=name, path=str(too_big), base_model="smollm2")
    with pytest.raises(PromotionFailed, match="would not serve") as refused:
        promote.promote(database, client, name=name, actor="alice")
    assert "rank" in str(refused.value)
    assert _active(database) == v1 and name not in client.models()

    with pytest.raises(errors.UnknownAdapter):
        promote.promote(database, client, name="no-such-adapter", actor="alice")
    with pytest.raises(errors.InvalidTransition, match="already active"):
        promote.promote(database, client, name=v1, actor="alice")


def test_rollback_with_nothing_before_goes_to_base_and_then_refuses(
    database: Database, client: ModelClient, versions: list[str]
) -> None:
    promote.promote(database, client, name=versions[0], actor="alice")
    assert promote.rollback(database, client, actor="bob") is None
    assert _active(database) is None
    with pytest.raises(errors.InvalidTransition, match="nothing to roll back"):
        promote.rollback(database, client, actor="bob")


def test_reconcile_loads_what_sql_says_and_unloads_old_versions(
    database: Database, client: ModelClient, versions: list[str]
) -> None:
    v1, v2, v3 = versions
    for name in versions:
        promote.promote(database, client, name=name, actor="alice", keep=3)
    assert {v1, v2, v3} <= set(client.models())
    # the server lost the active adapter (as after a restart) and still has an old one
    client.unload_adapter(v3)
    report = promote.reconcile(database, client, keep=2)
    assert report.loaded == [v3] and report.unloaded == [v1] and not report.problems
    served = set(client.models())
    assert {v2, v3} <= served and v1 not in served
    assert promote.reconcile(database, client, keep=2).summary() == "already in step"
