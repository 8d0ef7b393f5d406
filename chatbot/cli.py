"""The `chatbot` command. Each subcommand is a thin wrapper: it reads settings, builds what it
needs through `chatbot.wiring`, and turns our errors into one short line and exit status 1.

Subcommands living in `chatbot.cmd_*` modules are imported only when they run: importing all of
them means torch, transformers, peft and TRL (seconds on a small host), which `chatbot model-server`
never needs before vLLM starts."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from chatbot.common import USER_ERRORS, load_settings, user_message
from feedback import migrate

# command name -> (module, attribute); see the module docstring
LAZY_COMMANDS = {
    "model": ("chatbot.cmd_model", "model"),
    "model-server": ("chatbot.cmd_model", "model_server"),
    "ingest": ("chatbot.cmd_knowledge", "ingest"),
    "ask": ("chatbot.cmd_knowledge", "ask"),
    "eval": ("chatbot.cmd_knowledge", "evaluate"),
    "feedback": ("chatbot.cmd_feedback", "feedback"),
    "review": ("chatbot.cmd_review", "review"),
    # the group is defined in cmd_feedback; cmd_retrain adds promote, rollback and reconcile to it
    "adapters": ("chatbot.cmd_retrain", "adapters"),
    "retrain": ("chatbot.cmd_retrain", "retrain_command"),
    "scheduler": ("chatbot.cmd_scheduler", "scheduler"),
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            logging.getLogger("chatbot").debug("command failed", exc_info=True)
            raise click.ClickException(user_message(exc)) from None


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log debug output.")
def main(verbose: bool) -> None:
    """Company Q&A bot for Slack and Teams that learns from its users' feedback."""
    logging.basicConfig(
        level="DEBUG" if verbose else load_settings().log_level.upper(),
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
    settings = load_settings()
    migrate.upgrade(settings.sqlalchemy_url, revision)
    click.echo(f"Database at revision {migrate.current(settings.sqlalchemy_url)}.")


@db.command("current")
def db_current() -> None:
    """Print the schema revision, and whether migrations are pending."""
    url = load_settings().sqlalchemy_url
    now, head = migrate.current(url), migrate.head()
    click.echo(f"{now or 'empty'} (head {head}){'' if now == head else ' - run `chatbot db upgrade`'}")


@main.command("setup")
def setup() -> None:
    """Prepare everything the processes need: schema, base model, knowledge (idempotent)."""
    from chatbot.cmd_review import recheck_after_ingest
    from chatbot.wiring import SAMPLE_DIR, open_knowledge
    from model_server.prepare import prepare_base_model

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.sqlalchemy_url)
    click.echo(f"Database ready at revision {migrate.current(settings.sqlalchemy_url)}.")
    model_dir = prepare_base_model(settings.data_dir, settings.base_model)
    click.echo(f"Base model ready in {model_dir}.")
    if settings.sample_knowledge:
        knowledge = open_knowledge(settings, defer_embedder=True)
        report = knowledge.ingest([SAMPLE_DIR / "docs"])
        click.echo(f"Sample knowledge base: {report.summary()}")
        recheck_after_ingest(settings, knowledge, report.changed_ids)


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings, secrets hidden."""
    for name, value in load_settings().model_dump().items():
        click.echo(f"{name.upper()}={value}")


@main.command("bot")
def bot_command() -> None:
    """Start the bot: Slack (HTTP at /slack/events, or Socket Mode with SLACK_APP_TOKEN) and /healthz."""
    from chatbot.bot_process import serve

    serve(load_settings())
