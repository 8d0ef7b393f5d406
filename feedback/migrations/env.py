"""Alembic environment: the URL comes from the config that feedback.migrate builds."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import feedback.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from feedback.db import make_engine

target_metadata = SQLModel.metadata
url = context.config.get_main_option("sqlalchemy.url") or "sqlite://"


def run_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
