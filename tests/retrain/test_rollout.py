"""A canary from start to decision on the real store (both databases) with vLLM's LoRA endpoints
stood in by `FakeLoraServer`: opened beside live, promoted after good votes, rolled back after bad
ones, waiting with too few, undecided at its last look or when its window ends, stopped or promoted
by an admin, one at a time; and the run it came from marked with the outcome."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from feedback import errors, queries, store
from feedback.canary import Policy
from feedback.db import Database
from feedback.models import Canary, RetrainRun
from model_server.client import ModelClient
from retrain import promote, rollout
from retrain.rollout import RolloutConfig
from tests.support.fakes import FakeLoraServer

CONFIG = RolloutConfig(share=0.2, policy=Policy(min_votes=10, max_votes=30, looks=3, margin=0.1))
_users = itertools.count()


@pytest.fixture
def server() -> FakeLoraServer:
    return FakeLoraServer()


@pytest.fixture
def client(server: FakeLoraServer) -> ModelClient:
    return ModelClient("http://model.test", retries=0, transport=httpx.MockTransport(server))


@pytest.fixture
def adapters(tmp_path: Path) -> Path:
    for name in ("kb-v1", "kb-v2"):
        (tmp_path / name).mkdir()
    return tmp_path


def canary_run(database: Database, adapters: Path) -> int:
    """kb-v1 live, kb-v2 passed the gate in run #1 and now opens its canary."""
    with database.writer() as session:
        for name in ("kb-v1", "kb-v2"):
            store.register_adapter(session, name=name, path=str(adapters / name), base_model="smollm2")
        store.activate_adapter(session, name="kb-v1", actor="test")
        run = store.queue_run(session, trigger="admin", requested_by="U1")
        store.start_run(session, run_id=run.id or 0)
        store.finish_run(
            session, run_id=run.id or 0, status="canary", candidate="kb-v2", decision="gate passed"
        )
    return run.id or 0


def votes(database: Database, adapter: str, *, up: int, down: int) -> None:
    for value, n in ((1, up), (-1, down)):
        for _ in range(n):
            with database.writer() as session:
                question = store.record_question(session, platform="slack", user_id="U1", text="Leave?")
                answer = store.record_answer(
                    session, question_id=question.id or 0, text="26.", adapter=adapter
                )
                store.record_vote(
                    session,
                    answer_id=answer.id or 0,
                    user_id=f"U{next(_users)}",
                    value=value,
                    source="button",
                )


def opened(database: Database, client: ModelClient, adapters: Path) -> Canary:
    run_id = canary_run(database, adapters)
    path = str(adapters / "kb-v2")
    return rollout.start(
        database, client, candidate="kb-v2", path=path, live="kb-v1", share=0.2, run_id=run_id
    )


def run_of(database: Database) -> RetrainRun:
    with database.reader() as session:
        [run] = queries.recent_runs(session)
    return run


def test_a_canary_opens_beside_live_with_its_candidate_loaded(
    database: Database, client: ModelClient, server: FakeLoraServer, adapters: Path
) -> None:
    canary = opened(database, client, adapters)
    assert (canary.candidate, canary.live, canary.share, canary.status) == ("kb-v2", "kb-v1", 0.2, "running")
    assert "kb-v2" in server.served
    assert "serves 20% of conversation threads beside kb-v1" in canary.steps[0]["text"]
    with pytest.raises(errors.InvalidTransition, match="still open"):
        rollout.start(
            database, client, candidate="kb-v2", path=str(adapters), live="kb-v1", share=0.2, run_id=None
        )


def test_a_candidate_the_server_cannot_load_opens_no_canary(
    database: Database, client: ModelClient, server: FakeLoraServer, adapters: Path
) -> None:
    server.refuse_loading = True
    with pytest.raises(Exception, match="would not serve kb-v2"):
        opened(database, client, adapters)
    with database.reader() as session:
        assert queries.open_canary(session) is None


def test_too_few_votes_decide_nothing(database: Database, client: ModelClient, adapters: Path) -> None:
    opened(database, client, adapters)
    votes(database, "kb-v2", up=2, down=7)
    votes(database, "kb-v1", up=40, down=2)
    canary = rollout.check(database, client, CONFIG)
    assert canary is not None and canary.status == "running" and canary.looks_done == 0


def test_bad_votes_roll_the_candidate_back_and_mark_the_run(
    database: Database, client: ModelClient, server: FakeLoraServer, adapters: Path
) -> None:
    opened(database, client, adapters)
    votes(database, "kb-v2", up=2, down=10)
    votes(database, "kb-v1", up=45, down=5)
    canary = rollout.check(database, client, CONFIG)
    assert canary is not None and canary.status == "rolled_back" and canary.decided_by == rollout.AUTOMATIC
    assert canary.reason is not None and canary.reason.startswith("Rolled back: worse")
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v1"  # type: ignore[union-attr]
        assert queries.get_adapter(session, "kb-v2").status == "failed"  # type: ignore[union-attr]
        assert queries.open_canary(session) is None
    run = run_of(database)
    assert run.status == "rolled_back" and "Canary: Rolled back: worse" in (run.decision or "")


def test_good_votes_promote_the_candidate(database: Database, client: ModelClient, adapters: Path) -> None:
    opened(database, client, adapters)
    votes(database, "kb-v2", up=29, down=1)
    votes(database, "kb-v1", up=100, down=20)
    canary = rollout.check(database, client, CONFIG)
    assert canary is not None and canary.status == "promoted"
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v2"  # type: ignore[union-attr]
    assert run_of(database).status == "promoted"


def test_votes_from_before_the_canary_do_not_count(
    database: Database, client: ModelClient, adapters: Path
) -> None:
    votes(database, "kb-v2", up=0, down=30)  # a gate probe's or an earlier canary's, say
    opened(database, client, adapters)
    standing = rollout.standing(database, rollout._open(database))
    assert (standing.candidate.votes, standing.live.votes) == (0, 0)


def test_the_last_look_without_a_decision_leaves_it_to_the_admins(
    database: Database, client: ModelClient, adapters: Path
) -> None:
    opened(database, client, adapters)
    votes(database, "kb-v2", up=12, down=3)  # 80% against 80%: not yet sure at 15 votes
    votes(database, "kb-v1", up=12, down=3)
    first = rollout.check(database, client, CONFIG)
    assert first is not None and first.status == "running" and first.looks_done == 1
    assert first.steps[-1]["text"].startswith("Look 1: not yet clear")
    votes(database, "kb-v2", up=12, down=3)
    votes(database, "kb-v1", up=12, down=3)
    rollout.check(database, client, CONFIG)
    last = rollout.check(database, client, CONFIG)
    assert last is not None and last.status == "undecided" and last.looks_done == 3
    assert rollout.check(database, client, CONFIG).status == "undecided"  # type: ignore[union-attr]
    votes(database, "kb-v2", up=30, down=0)
    assert rollout.check(database, client, CONFIG).status == "undecided"  # type: ignore[union-attr]


def test_a_window_that_ends_leaves_it_to_the_admins(
    database: Database, client: ModelClient, adapters: Path
) -> None:
    opened(database, client, adapters)
    ended = RolloutConfig(policy=CONFIG.policy, window=timedelta(seconds=-1))
    canary = rollout.check(database, client, ended)
    assert canary is not None and canary.status == "undecided" and "an admin decides" in (canary.reason or "")


def test_an_admin_stops_it_and_all_traffic_is_live_again(
    database: Database, client: ModelClient, server: FakeLoraServer, adapters: Path
) -> None:
    opened(database, client, adapters)
    canary = rollout.stop(database, client, actor="U1")
    assert canary.status == "stopped" and canary.decided_by == "U1"
    with database.reader() as session:
        assert queries.open_canary(session) is None
    assert run_of(database).status == "rolled_back"
    with pytest.raises(errors.InvalidTransition, match="No canary is open"):
        rollout.promote_now(database, client, actor="U1")


def test_an_admin_promotes_it_early(database: Database, client: ModelClient, adapters: Path) -> None:
    opened(database, client, adapters)
    canary = rollout.promote_now(database, client, actor="U1")
    assert canary.status == "promoted" and canary.reason == "Promoted by U1."
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v2"  # type: ignore[union-attr]
        history = queries.adapter_history(session)
    assert (history[0].action, history[0].actor, history[0].to_name) == ("promote", "U1", "kb-v2")


def test_a_second_scheduler_continues_the_canary_from_sql(
    database: Database, client: ModelClient, adapters: Path
) -> None:
    opened(database, client, adapters)
    votes(database, "kb-v2", up=12, down=3)
    votes(database, "kb-v1", up=12, down=3)
    rollout.check(database, client, CONFIG)  # one process's look
    other = Database(database.url)  # another process: nothing but the database in common
    try:
        votes(other, "kb-v2", up=2, down=20)
        votes(other, "kb-v1", up=30, down=2)
        canary = rollout.check(other, client, CONFIG)
        assert canary is not None and canary.status == "rolled_back" and canary.looks_done == 1
    finally:
        other.dispose()


def test_a_restarted_model_server_gets_both_sides_back(
    database: Database, client: ModelClient, adapters: Path
) -> None:
    opened(database, client, adapters)
    restarted = FakeLoraServer()  # only the base model, as after a restart
    fresh = ModelClient("http://model.test", retries=0, transport=httpx.MockTransport(restarted))
    report = promote.reconcile(database, fresh, keep=2)
    assert sorted(report.loaded) == ["kb-v1", "kb-v2"] and {"kb-v1", "kb-v2"} <= set(restarted.served)
    rollout.stop(database, fresh, actor="U1")
    assert "kb-v2" not in restarted.served  # a stopped canary's candidate is unloaded again
