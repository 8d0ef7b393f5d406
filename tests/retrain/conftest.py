"""Fixtures the retrain tests share beyond tests/conftest.py: the real engine they promote to and
gate through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_server.client import ModelClient
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
