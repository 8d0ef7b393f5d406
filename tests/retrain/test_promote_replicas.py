"""Promotion and rollback across two real model servers (the embedded engine, twice): the pointer in
SQL moves only once every replica answers with the new adapter; a replica that is down blocks a
promotion, with its address, but not a rollback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback import queries
from feedback.db import Database
from model_server.client import ModelClient
from model_server.errors import ModelNotFound
from model_server.replicas import connect, members
from retrain import promote
from retrain.errors import PromotionFailed
from tests.support.model_servers import free_port, running_server

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def replica_urls(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    logs = tmp_path_factory.mktemp("replicas")
    with (
        running_server("transformers", base_model_dir, logs / "a.log", max_loras=4) as a,
        running_server("transformers", base_model_dir, logs / "b.log", max_loras=4) as b,
    ):
        yield [a, b]


@pytest.fixture
def both(replica_urls: list[str]) -> Iterator[ModelClient]:
    with connect(replica_urls, retries=0) as client:
        yield client


def _active(database: Database) -> str | None:
    with database.reader() as session:
        active = queries.active_adapter(session)
    return active.name if active else None


def test_a_promotion_reaches_every_replica_before_the_pointer_moves(
    database: Database, both: ModelClient, versions: list[str]
) -> None:
    v1 = versions[0]
    promote.promote(database, both, name=v1, actor="alice")
    assert _active(database) == v1
    for replica in members(both):
        assert v1 in replica.models()
        assert replica.chat(HELLO, model=v1, max_tokens=3, logprobs=False).model == v1


def test_a_replica_that_is_down_blocks_a_promotion_and_names_itself(
    database: Database, replica_urls: list[str], versions: list[str]
) -> None:
    v1, v2, v3 = versions
    with connect(replica_urls, retries=0) as both:
        promote.promote(database, both, name=v1, actor="alice")
        promote.promote(database, both, name=v2, actor="alice")
    gone = f"http://127.0.0.1:{free_port()}"
    with connect([*replica_urls, gone], retries=0) as three:
        with pytest.raises(PromotionFailed, match=gone):
            promote.promote(database, three, name=v3, actor="bob")
        assert _active(database) == v2  # nothing moved
        # the emergency lever still works: the replicas that answer serve the previous version
        back = promote.rollback(database, three, actor="carol")
    assert back is not None and back.name == v1 and _active(database) == v1


def test_an_adapter_no_replica_serves_is_refused_by_name(both: ModelClient) -> None:
    with pytest.raises(ModelNotFound):
        both.chat(HELLO, model=f"kb-{uuid.uuid4().hex[:6]}", max_tokens=3, logprobs=False)
