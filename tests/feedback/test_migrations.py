"""The migrations create the schema the models describe, on an empty SQLite file and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from feedback import migrate

TABLES = {
    "question",
    "answer",
    "vote",
    "correction",
    "review",
    "processedevent",
    "adapterversion",
    "adapterchange",
    "retrainrun",
}


# Each test makes its own database, not the `database` fixture's: migrating it is what is tested.


def _check_schema(url: str) -> None:
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_upgrade_creates_schema_on_empty_sqlite_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'chatbot.db'}"
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    _check_schema(url)
    migrate.upgrade(url)  # idempotent
    assert migrate.current(url) == migrate.head()


def test_downgrade_to_base_and_back(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'chatbot.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate.upgrade(url)
    _check_schema(url)


@pytest.mark.postgres
def test_upgrade_creates_schema_on_postgres(postgres_server_url: str) -> None:
    migrate.upgrade(postgres_server_url)
    assert migrate.current(postgres_server_url) == migrate.head()
    _check_schema(postgres_server_url)


def test_upgrade_keeps_existing_answers(tmp_path) -> None:
    """0002 adds a NOT NULL column; answers written under 0001 get an empty prompt."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'chatbot.db'}"
    migrate.upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO question (platform, workspace, channel, thread, user_id, text, created_at) "
                "VALUES ('slack', '', 'C1', '', 'U1', 'How much leave?', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO answer (question_id, platform, text, passage_ids, adapter, created_at) "
                "VALUES (1, 'slack', '25 days.', '[]', 'base', '2026-01-01')"
            )
        )
    migrate.upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT text, prompt FROM answer")).all() == [("25 days.", "[]")]
    engine.dispose()
