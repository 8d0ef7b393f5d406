"""Engines and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite is opened in WAL mode with a busy timeout and foreign keys on. Sessions meant for writing
start their transaction with BEGIN IMMEDIATE: a deferred transaction that reads and then writes
can fail with "database is locked" when another writer committed in between, and the busy timeout
does not cover that case. Readers keep deferred transactions so they never block writers.

Text the databases cannot both hold is made storable on its way to either: PostgreSQL's text
refuses U+0000, and neither driver encodes a lone surrogate (`"\\ud800"` in JSON), so each becomes
U+FFFD in every statement's parameters (writes and lookups alike), and a question holding one is
stored and answered the same on both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

BUSY_TIMEOUT_MS = 30_000
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class Database:
    """One engine, and sessions for reading and for writing."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._writer: Engine = (
            self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def reader(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def writer(self) -> Session:
        return Session(self._writer, expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()


def storable(value: Any) -> Any:
    """`value` (a statement's parameters) with every string's unstorable characters replaced."""
    if isinstance(value, str):
        return UNSTORABLE.sub(REPLACEMENT, value) if UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {key: storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(storable(item) for item in value)
    return value


def _storable_parameters(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    return statement, storable(parameters)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    engine = _engine(url, echo=echo)
    event.listen(engine, "before_cursor_execute", _storable_parameters, retval=True)
    return engine


def _engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
