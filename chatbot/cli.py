"""The `chatbot` command. Each subcommand is a thin wrapper: it reads settings, builds what it
needs through `chatbot.wiring`, and turns our errors into one short line and exit status 1."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from pydantic import ValidationError

from chatbot.settings import Settings, get_settings
from chatbot.wiring import open_database
from feedback import migrate, queries
from feedback.errors import FeedbackError

log = logging.getLogger("chatbot")

# Errors whose message is written for a person; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (FeedbackError,)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"Settings are not usable: {problems}") from None


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log debug output.")
def main(verbose: bool) -> None:
    """Company Q&A bot for Slack and Teams that learns from its users' feedback."""
    level = "DEBUG" if verbose else None
    logging.basicConfig(
        level=level or _settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@main.group()
def db() -> None:
    """The SQL store's schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (idempotent)."""
    settings = _settings()
    migrate.upgrade(settings.sqlalchemy_url, revision)
    click.echo(f"Database at revision {migrate.current(settings.sqlalchemy_url)}.")


@db.command("current")
def db_current() -> None:
    """Print the schema revision, and whether migrations are pending."""
    url = _settings().sqlalchemy_url
    now, head = migrate.current(url), migrate.head()
    click.echo(f"{now or 'empty'} (head {head}){'' if now == head else ' - run `chatbot db upgrade`'}")


@main.command("setup")
def setup() -> None:
    """Prepare everything the processes need (idempotent)."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.sqlalchemy_url)
    click.echo(f"Database ready at revision {migrate.current(settings.sqlalchemy_url)}.")


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings, secrets hidden."""
    for name, value in _settings().model_dump().items():
        click.echo(f"{name.upper()}={value}")


@main.group()
def adapters() -> None:
    """LoRA adapter versions."""


@adapters.command("list")
def adapters_list() -> None:
    """List adapter versions, the active one marked."""
    database = open_database(_settings())
    with database.reader() as session:
        rows = queries.list_adapters(session)
    if not rows:
        click.echo("No adapters yet: the base model is serving.")
    for row in rows:
        mark = "*" if row.status == "active" else " "
        click.echo(f"{mark} {row.name:<24} {row.status:<10} parent={row.parent or 'base'} {row.path}")
