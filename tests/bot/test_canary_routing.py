"""While a canary is open the candidate answers its share of conversation threads, a thread stays on
one side, every replica (another process's router) picks the same side, a stopped canary sends all
traffic back to live, and each answer records which model gave it; `/chatbot canary` for admins only,
and `rollback` during a canary stops it."""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.admin import NO_CANARY, REFUSAL, AdminCommands
from bot.pipeline import Pipeline, Question
from bot.routing import CanaryRoute, on_candidate_side, thread_key
from feedback import queries, store
from feedback.db import Database
from model_server.client import AsyncModelClient
from tests.support.fakes import FakeModel, FakePassage, FakeRetriever


def open_canary(database: Database, *, share: float = 0.2) -> int:
    with database.writer() as session:
        for name in ("kb-v1", "kb-v2"):
            store.register_adapter(session, name=name, path=f"/adapters/{name}", base_model="smollm2")
        store.activate_adapter(session, name="kb-v1", actor="test")
        canary = store.open_canary(
            session, candidate="kb-v2", live="kb-v1", share=share, run_id=None, note="open"
        )
    return canary.id or 0


def question(thread: str, user: str = "U1") -> Question:
    return Question(
        "How much leave?", platform="slack", user_id=user, workspace="T1", channel="C1", thread=thread
    )


def test_the_share_is_honoured_and_a_thread_never_switches(database: Database) -> None:
    open_canary(database, share=0.2)
    route = CanaryRoute(database, ttl=60)
    sides = [route(question(f"1718.{n:04d}"), "kb-v1") for n in range(600)]
    share = sides.count("kb-v2") / len(sides)
    assert 0.15 <= share <= 0.25, share  # 600 threads: 0.2 ± 3.3 standard errors
    again = [route(question(f"1718.{n:04d}", user="U9"), "kb-v1") for n in range(600)]
    assert again == sides  # the same threads, asked again by anyone: the same side


def test_another_process_puts_each_thread_on_the_same_side(database: Database) -> None:
    open_canary(database)
    other = Database(database.url)
    try:
        here, there = CanaryRoute(database), CanaryRoute(other)
        threads = [question(f"t{n}") for n in range(200)]
        assert [here(q, "kb-v1") for q in threads] == [there(q, "kb-v1") for q in threads]
    finally:
        other.dispose()


def test_outside_threads_a_person_stays_on_one_side_per_channel() -> None:
    key = thread_key(Question("Hi", platform="web", user_id="console:ada", channel="console"))
    assert key == "web||console|user:console:ada"
    assert on_candidate_side(1, 0.5, key) == on_candidate_side(1, 0.5, key)


def test_a_stopped_canary_sends_every_thread_to_live_within_the_ttl(database: Database) -> None:
    canary_id = open_canary(database, share=0.99)
    route = CanaryRoute(database, ttl=0)
    assert route(question("t1"), "kb-v1") == "kb-v2"
    with database.writer() as session:
        store.close_canary(session, canary_id=canary_id, status="stopped", reason="stop", actor="U1")
    assert route(question("t1"), "kb-v1") == "kb-v1"


def test_a_canary_beside_another_live_model_does_not_apply(database: Database) -> None:
    open_canary(database, share=0.99)
    assert CanaryRoute(database, ttl=0)(question("t1"), "kb-v0") == "kb-v0"  # rolled back since


async def test_each_answer_records_the_model_that_gave_it(database: Database) -> None:
    open_canary(database, share=0.5)
    model = FakeModel("You get 26 days.")
    pipeline = Pipeline(
        retriever=FakeRetriever([FakePassage("p1", "Leave", "Annual leave is 26 days.", "leave.md")]),
        client=AsyncModelClient("http://model.test", transport=httpx.MockTransport(model), retries=0),
        model_name=lambda: "kb-v1",
        database=database,
        route=CanaryRoute(database),
    )
    answers = [await pipeline.answer(question(f"t{n}")) for n in range(20)]
    await pipeline.client.aclose()
    assert {a.adapter for a in answers} == {"kb-v1", "kb-v2"}
    assert [r["model"] for r in model.requests if not r.get("top_logprobs")] == [a.adapter for a in answers]
    with database.reader() as session:
        stored = [queries.get_answer(session, a.answer_id or 0) for a in answers]
    assert [s.adapter for s in stored if s] == [a.adapter for a in answers]


async def test_canary_commands_for_admins_only(database: Database, tmp_path: Path) -> None:
    admin = AdminCommands(database, admins=["UADMIN"])
    assert (await admin.handle("UADMIN", "canary")).text == NO_CANARY
    open_canary(database)
    refused = await admin.handle("U2", "canary stop", platform="slack", channel="C1")
    assert refused.text == REFUSAL.format(command="canary")
    with database.reader() as session:
        assert queries.open_canary(session) is not None
        assert [r.command for r in queries.recent_refusals(session)] == ["canary stop"]
    status = (await admin.handle("UADMIN", "canary status")).text
    assert status.startswith("Canary #1: kb-v2 on 20% of threads beside kb-v1 (running).")
    assert "kb-v2: 0 👍 / 0 👎, no votes yet" in status
    assert "takes status, promote, stop" in (await admin.handle("UADMIN", "canary merge")).text
    promoted = await admin.handle("UADMIN", "canary promote")
    assert promoted.text == "Promoted: kb-v2 answers every question now."
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v2"  # type: ignore[union-attr]
        assert queries.latest_canary(session).decided_by == "UADMIN"  # type: ignore[union-attr]


async def test_rollback_during_a_canary_stops_it_and_keeps_live(database: Database) -> None:
    admin = AdminCommands(database, admins=["UADMIN"])
    open_canary(database)
    reply = await admin.handle("UADMIN", "rollback")
    assert reply.text == "Stopped: every question goes to kb-v1 again; kb-v2 is rolled back."
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v1"  # type: ignore[union-attr]
        assert queries.latest_canary(session).status == "stopped"  # type: ignore[union-attr]
        assert queries.get_adapter(session, "kb-v2").status == "failed"  # type: ignore[union-attr]
