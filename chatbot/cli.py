"""The `chatbot` command. Each subcommand is a thin wrapper: it reads settings, builds what it
needs through `chatbot.wiring`, and turns our errors into one short line and exit status 1."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from chatbot.settings import Settings, get_settings
from chatbot.wiring import open_database
from feedback import migrate, queries
from feedback.errors import FeedbackError
from model_server import launch
from model_server.errors import ModelServerError
from model_server.prepare import PrepareError, prepare_base_model

log = logging.getLogger("chatbot")

# Errors whose message is written for a person; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    FeedbackError,
    ModelServerError,
    PrepareError,
    launch.LaunchError,
)


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
    model_dir = prepare_base_model(settings.data_dir, settings.base_model)
    click.echo(f"Base model ready in {model_dir}.")


@main.group()
def model() -> None:
    """The base model."""


@model.command("prepare")
def model_prepare() -> None:
    """Prepare the base model (the bundled SmolLM2 unless BASE_MODEL says otherwise)."""
    settings = _settings()
    click.echo(prepare_base_model(settings.data_dir, settings.base_model))


@main.command("model-server")
@click.option("--backend", type=click.Choice(["auto", "vllm", "transformers"]), default=None)
def model_server(backend: str | None) -> None:
    """Start the model server where MODEL_SERVER_URL points, with the active adapter loaded."""
    settings = _settings()
    spec = launch.ServerSpec(
        model_dir=prepare_base_model(settings.data_dir, settings.base_model),
        url=settings.model_server_url,
        served_model_name=settings.served_model_name,
        max_lora_rank=settings.max_lora_rank,
        max_loras=settings.max_loras,
        max_model_len=settings.max_model_len,
        adapters=_active_adapter_paths(settings),
    )
    vllm_python = launch.find_vllm_python(settings.vllm_python)
    chosen = launch.choose_backend(backend or settings.model_backend, vllm_python)
    if chosen == "vllm":
        assert vllm_python is not None
        command = launch.vllm_command(vllm_python, spec)
        extra_env = launch.vllm_environment(kv_cache_gib=settings.vllm_kv_cache_gib)
    else:
        command, extra_env = launch.engine_command(spec), {}
    click.echo(f"Starting the {chosen} model server at {spec.url} (base model {spec.model_dir.name}).")
    sys.exit(launch.run(command, spec, extra_env))


def _active_adapter_paths(settings: Settings) -> dict[str, str]:
    """The adapter recorded as active in SQL, so a restarted server serves it again at once."""
    try:
        database = open_database(settings)
        with database.reader() as session:
            active = queries.active_adapter(session)
        database.dispose()
    except SQLAlchemyError:
        log.warning("could not read the active adapter; starting with the base model only", exc_info=True)
        return {}
    if active is None or not Path(active.path).is_dir():
        return {}
    return {active.name: active.path}


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
