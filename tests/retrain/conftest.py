"""Fixtures the retrain tests share beyond tests/conftest.py: the real engine they promote to and
gate through, and adapter versions to promote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback import store
from feedback.db import Database
from model_server.client import ModelClient
from tests.support.lora import make_lora
from tests.support.model_servers import running_server


@pytest.fixture(scope="module")
def engine_url(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded engine on the real base model, started as `chatbot model-server` starts it, one
    per test module (up to 4 adapters loaded at once)."""
    log = tmp_path_factory.mktemp("engine") / "server.log"
    with running_server("transformers", base_model_dir, log, max_loras=4) as url:
        yield url


@pytest.fixture
def client(engine_url: str) -> Iterator[ModelClient]:
    """The client bot/ and retrain/ use, talking to `engine_url`."""
    with ModelClient(engine_url) as c:
        yield c


@pytest.fixture
def versions(base_model_dir: Path, tmp_path: Path, database: Database) -> list[str]:
    """Three registered adapter versions with a name prefix of their own (the server is shared)."""
    prefix = f"t{uuid.uuid4().hex[:6]}"
    names = []
    for n in (1, 2, 3):
        name = f"{prefix}-v{n}"
        path = make_lora(base_model_dir, tmp_path / name, seed=n)
        with database.writer() as session:
            store.register_adapter(session, name=name, path=str(path), base_model="smollm2")
        names.append(name)
    return names
