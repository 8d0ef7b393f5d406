"""A new adapter earns its traffic, across the real processes (`make run`'s Procfile: the model
server, the bot, the scheduler) on SQLite, driven through Slack's protocol.

A correction is approved and an admin's retrain passes the gate: the candidate does not take over,
it opens a canary (the run `canary`, the steps posted to the admin channel) and answers about half
of the conversation threads while the base model answers the rest, each thread recorded with its
model. 👍 on both sides: the scheduler's canary check promotes it. Then a second retrain's candidate
gets 👎 where the live adapter gets 👍: the check rolls it back by itself, the run is marked so and
every question goes to live again.

The canary decides at one look after 4 votes on each side (CANARY_MIN_VOTES = CANARY_MAX_VOTES = 4)
and the margin is wide, so a few questions decide it (and the gate's margins are wide, so that both
candidates reach their canary); the decision rule itself is tested on vote
counts in tests/feedback/test_canary.py and measured by bench/canary.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.slack.review_blocks import APPROVE_ACTION
from feedback import queries
from feedback.db import Database
from feedback.models import Canary, RetrainRun
from tests.e2e.stack import ADMIN, ADMIN_CHANNEL, Stack, running_stack, wait
from tests.e2e.test_loop import answer_row, ask, click_card, review_card, suggest
from tests.support.slack_payloads import reaction_event

pytestmark = pytest.mark.e2e

LEAVE = "How many days of annual leave do I get per year?"
LEAVE_FIX = "Full-time employees get 26 days of paid annual leave per calendar year."
FOUNDED = "When was Larkspur founded?"
FOUNDED_FIX = "Larkspur was founded in Rotterdam in 2011."
# Asked in new threads to make traffic; not the corrected ones (those get the reviewed answer).
QUESTIONS = (
    "When is Larkspur Day?",
    "How do I book a desk in the office?",
    "Which VPN client do we use?",
    "How do I claim travel expenses?",
    "Who do I ask about payroll?",
    "Where can I park in Lisbon?",
    "What is the Wi-Fi network called?",
)
_users = itertools.count(100)


@pytest.fixture(scope="module")
def stack(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {
        "RETRAIN_EPOCHS": "8",
        "RETRAIN_LEARNING_RATE": "0.002",
        "RETRAIN_CRON": "0 3 1 1 *",
        "CANARY_SHARE": "0.5",
        "CANARY_MIN_VOTES": "4",
        "CANARY_MAX_VOTES": "4",
        # the corrections first, and little else: the second retrain stays as quick as the first
        "RETRAIN_MAX_EXAMPLES": "4",
        "CANARY_MARGIN": "0.9",
        "SCHEDULER_POLL_SECONDS": "3",
        # The second candidate must reach its canary whatever one more retrain of a 135M model on a
        # handful of examples does to the validation split: the gate is test_loop's subject, not this.
        "GATE_MARGIN": "1",
        "GATE_LOSS_MARGIN": "10",
    }
    with running_stack(tmp_path_factory.mktemp("canary"), **settings) as running:
        running.start()
        running.wait_ready()
        yield running


@pytest.fixture(scope="module")
def database(stack: Stack) -> Iterator[Database]:
    db = Database(f"sqlite:///{Path(stack.env['DATA_DIR']) / 'chatbot.db'}")
    yield db
    db.dispose()


def retrain(stack: Stack, database: Database, number: int) -> RetrainRun:
    assert "is queued" in stack.command("retrain", user=ADMIN)

    def finished() -> RetrainRun | None:
        with database.reader() as session:
            runs = session.exec(select(RetrainRun).order_by(RetrainRun.id)).all()
        if len(runs) < number or runs[number - 1].status in ("queued", "running"):
            return None
        return runs[number - 1]

    return wait(f"retrain #{number}", finished, 420, every=2)


def canary(database: Database) -> Canary | None:
    with database.reader() as session:
        return queries.latest_canary(session)


def admin_posts(stack: Stack) -> str:
    return "\n".join(m.get("text", "") for m in stack.slack.messages.get(ADMIN_CHANNEL, []))


def traffic(
    stack: Stack, database: Database, sides: tuple[str, str], per_side: int
) -> dict[str, list[dict[str, Any]]]:
    """New threads until each side answered `per_side` of them: the Slack answers by model."""
    by_model: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for n in range(60):
        message = ask(stack, f"U{next(_users)}", QUESTIONS[n % len(QUESTIONS)])
        model = answer_row(database, message["ts"]).adapter
        if model == "reviewed":  # close enough to a corrected question: no model answered it
            continue
        assert model in sides, f"answered by {model}, not one of {sides}"
        by_model[model].append(message)
        if all(len(found) >= per_side for found in by_model.values()):
            return by_model
    raise AssertionError(
        f"60 threads and still not {per_side} on each side: {[len(v) for v in by_model.values()]}"
    )


def react(stack: Stack, messages: list[dict[str, Any]], emoji: str) -> None:
    for message in messages:
        user = f"U{next(_users)}"
        stack.event(reaction_event("reaction_added", emoji, user=user, channel="C1", ts=message["ts"]))


def correct_and_approve(stack: Stack, database: Database, question: str, fix: str, card: int) -> None:
    answer = ask(stack, "U1", question)
    suggest(stack, answer, "U1", fix)
    click_card(stack, review_card(stack, card), APPROVE_ACTION)
    stack.calls("chat.postMessage", channel="DU1", count=card)  # the author is told


@pytest.mark.timeout(1200)
def test_a_candidate_earns_its_traffic_then_a_worse_one_is_rolled_back(
    stack: Stack, database: Database
) -> None:
    correct_and_approve(stack, database, LEAVE, LEAVE_FIX, 1)
    first = retrain(stack, database, 1)
    assert first.status == "canary", f"{first.status}: {first.error or first.decision}\n{stack.log()[-4000:]}"
    opened = canary(database)
    assert opened is not None and (opened.candidate, opened.live, opened.share) == ("kb-v1", "base", 0.5)
    wait(
        "the canary's start in the admin channel",
        lambda: "serves 50% of conversation threads" in admin_posts(stack),
        30,
    )
    assert "Canary #1: kb-v1 on 50% of threads beside base (running)." in stack.command(
        "canary status", user=ADMIN
    )

    # Both sides answer; everyone likes both: not worse, so the scheduler promotes it.
    sides = traffic(stack, database, ("kb-v1", "base"), 4)
    react(stack, sides["kb-v1"][:4] + sides["base"][:4], "+1")
    promoted = wait(
        "the promotion", lambda: (c := canary(database)) is not None and c.status == "promoted" and c, 60
    )
    assert promoted.decided_by == "canary" and promoted.reason.startswith("Promoted: not worse")
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v1"  # type: ignore[union-attr]
        assert session.get(RetrainRun, first.id).status == "promoted"  # type: ignore[union-attr]
    wait("the promotion in the admin channel", lambda: "Promoted: not worse" in admin_posts(stack), 30)

    # A second retrain on the new feedback opens a canary beside kb-v1; its answers get 👎 while
    # kb-v1's get 👍: worse, so the scheduler rolls it back by itself.
    correct_and_approve(stack, database, FOUNDED, FOUNDED_FIX, 2)
    second = retrain(stack, database, 2)
    assert second.status == "canary", f"{second.status}: {second.error or second.decision}"
    assert (canary(database).candidate, canary(database).live) == ("kb-v2", "kb-v1")  # type: ignore[union-attr]
    sides = traffic(stack, database, ("kb-v2", "kb-v1"), 4)
    react(stack, sides["kb-v2"][:4], "-1")
    react(stack, sides["kb-v1"][:4], "+1")
    rolled = wait(
        "the rollback", lambda: (c := canary(database)) is not None and c.status == "rolled_back" and c, 60
    )
    assert rolled.reason.startswith("Rolled back: worse"), rolled.reason
    with database.reader() as session:
        assert queries.active_adapter(session).name == "kb-v1"  # type: ignore[union-attr]
        assert queries.get_adapter(session, "kb-v2").status == "failed"  # type: ignore[union-attr]
        run = session.get(RetrainRun, second.id)
    assert (
        run is not None
        and run.status == "rolled_back"
        and "Canary: Rolled back: worse" in (run.decision or "")
    )
    wait("the rollback in the admin channel", lambda: "Rolled back: worse" in admin_posts(stack), 30)
    after = ask(stack, "U9", QUESTIONS[1])
    assert answer_row(database, after["ts"]).adapter == "kb-v1"  # every thread is live's again
