"""The product scaled out, across real processes: deploy/Procfile.replicas's two model servers (the
smallest model, vLLM where it is installed), two bots and one scheduler on a PostgreSQL database of
the test's own, driven through Slack's protocol with questions spread over both bots as a load
balancer would.

Liked answers and an admin's retrain promote kb-v1: then 100 questions, every one answered and
every one by kb-v1, whichever bot and model server took it. `/chatbot rollback` likewise: 100 more,
every one by the base model. Last, a bot is killed (SIGKILL) right after acknowledging a question:
the other bot answers it in its thread.

The gate's margins are wide: whether kb-v1 is better is test_loop's subject, not this one's.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from feedback import queries
from feedback.db import Database
from feedback.models import Answer, KeptEvent, Question, RetrainRun, Vote
from tests.e2e.cluster import Cluster, fresh_database, postgres_reachable, running_cluster
from tests.e2e.stack import ADMIN, wait
from tests.e2e.test_canary import QUESTIONS
from tests.support.slack_api import BOT_USER
from tests.support.slack_payloads import mention, reaction_event

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(postgres_reachable() is not None, reason=str(postgres_reachable())),
]

ROUND = 100
_users = itertools.count(100)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(
    base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> Iterator[Cluster]:
    settings = {
        "RETRAIN_EPOCHS": "2",
        "RETRAIN_CRON": "0 3 1 1 *",
        "SCHEDULER_POLL_SECONDS": "3",
        "GATE_MARGIN": "1",
        "GATE_LOSS_MARGIN": "10",
        "BOT_REPLICA_TIMEOUT_SECONDS": "6",
        # short answers: 200 questions on two cores; which adapter answered is what counts here
        "ANSWER_MAX_TOKENS": "24",
        # a core each (vLLM would pin both to the same one), and one torch thread for every other
        # process (the Procfile gives the bots one; here the scheduler's training too): two cores,
        # five processes. Without it, 100 questions took about 6 minutes instead of under one.
        "MODEL_A_CPUS": "0",
        "MODEL_B_CPUS": str(min(1, (os.cpu_count() or 1) - 1)),
        "OMP_NUM_THREADS": "1",
    }
    with running_cluster(tmp_path_factory.mktemp("replicas"), database_url, **settings) as running:
        running.start()
        running.wait_ready()
        yield running


@pytest.fixture(scope="module")
def database(cluster: Cluster, database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def send(cluster: Cluster, bot: int, text: str) -> str:
    """`text` mentioned to the bot in #C1 through bot `bot`; the question's ts (its thread)."""
    message = cluster.slack.add_message("C1", f"U{next(_users)}", f"<@{BOT_USER}> {text}")
    cluster.target = bot
    response = cluster.event(mention(message, "C1"))
    assert response.status_code == 200, response.text
    return str(message["ts"])


def answers(database: Database, threads: list[str]) -> dict[str, Answer]:
    """The answers shown in these threads so far (posted, with their Slack ts recorded)."""
    with database.reader() as session:
        rows = session.exec(
            select(Question.thread, Answer)
            .join(Answer, col(Answer.question_id) == col(Question.id))
            .where(col(Question.thread).in_(threads), col(Answer.reply_ref).is_not(None))
        ).all()
    return {thread: answer for thread, answer in rows}


def ask_round(cluster: Cluster, database: Database, count: int) -> list[Answer]:
    """`count` questions at once, alternating between the bots; every answer, or the test fails
    saying how many are missing."""
    threads = [send(cluster, n % 2, QUESTIONS[n % len(QUESTIONS)]) for n in range(count)]
    try:
        found = wait(
            f"{count} answers", lambda: len(got := answers(database, threads)) == count and got, 600, 2
        )
    except AssertionError:
        missing = count - len(answers(database, threads))
        raise AssertionError(f"{missing} of {count} questions unanswered\n{cluster.logs_tail()}") from None
    return [found[t] for t in threads]


def votes(database: Database) -> list[Vote]:
    with database.reader() as session:
        return list(session.exec(select(Vote)))


def chats_served(cluster: Cluster, name: str) -> int:
    """Chat requests in a model server's log (vLLM's access log, or the embedded engine's line)."""
    return len(re.findall(r"POST /v1/chat/completions|chat model=", cluster.log(name)))


def retrain(cluster: Cluster, database: Database) -> RetrainRun:
    assert "is queued" in cluster.command("retrain", user=ADMIN)

    def finished() -> RetrainRun | None:
        with database.reader() as session:
            run = session.exec(select(RetrainRun)).first()
        return run if run is not None and run.status not in ("queued", "running") else None

    return wait("the retrain", finished, 420, every=2)


def active(database: Database) -> str:
    with database.reader() as session:
        adapter = queries.active_adapter(session)
    return adapter.name if adapter else "base"


@pytest.mark.timeout(1500)
def test_a_promotion_and_a_rollback_reach_every_replica(cluster: Cluster, database: Database) -> None:
    # Spread: both bots take questions, both model servers answer them.
    first = ask_round(cluster, database, 6)
    assert {a.adapter for a in first} == {"base"}
    assert chats_served(cluster, "model-a") > 0 and chats_served(cluster, "model-b") > 0

    # 👍 on each (through the other bot): liked answers, some of them in the training split
    for n, liked in enumerate(first):
        cluster.target = 1 - n % 2
        cluster.event(
            reaction_event("reaction_added", "+1", user="U1", channel="C1", ts=str(liked.reply_ref))
        )
    wait("the votes", lambda: len(votes(database)) == len(first), 30)
    run = retrain(cluster, database)
    assert run.status == "promoted", f"{run.status}: {run.error or run.decision}\n{cluster.logs_tail()}"
    assert active(database) == "kb-v1"

    promoted = ask_round(cluster, database, ROUND)
    assert [a.adapter for a in promoted] == ["kb-v1"] * ROUND

    cluster.target = 0
    assert cluster.command("rollback", user=ADMIN).startswith("Rolled back: the base model")
    assert active(database) == "base"
    rolled_back = ask_round(cluster, database, ROUND)
    assert [a.adapter for a in rolled_back] == ["base"] * ROUND


@pytest.mark.timeout(300)
def test_a_bot_killed_after_acknowledging_a_question_loses_nothing(
    cluster: Cluster, database: Database
) -> None:
    thread = send(cluster, 0, QUESTIONS[0])  # bot-a said 200: Slack will not send it again
    cluster.kill("bot-a")
    assert answers(database, [thread]) == {}, "bot-a answered before it was killed: nothing was tested"
    answered = wait("bot-b's answer", lambda: answers(database, [thread]), 90, every=1)
    assert answered[thread].text
    with database.reader() as session:
        taken = session.exec(select(KeptEvent).where(col(KeptEvent.attempts) > 1)).all()
    assert [r.finished_at is not None for r in taken] == [True]  # taken over once, and answered
    assert "stopped before answering" in cluster.log("bot-b")
