"""`chatbot model prepare` and `chatbot model-server`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from chatbot.common import load_settings
from chatbot.settings import Settings
from chatbot.wiring import open_database, own_model_client
from feedback import queries
from model_server import catalog, launch
from model_server.prepare import prepare_base_model, prepared_models, resolve_name
from retrain import promote

log = logging.getLogger("chatbot")


@click.group()
def model() -> None:
    """The base model."""


@model.command("prepare")
@click.argument("name", required=False, default="")
def model_prepare(name: str) -> None:
    """Prepare NAME (a catalog name, GGUF file, directory or hub id; default: BASE_MODEL)."""
    settings = load_settings()
    click.echo(prepare_base_model(settings.data_dir, name or settings.base_model))


@model.command("list")
def model_list() -> None:
    """The catalog: each model, its size and licence, and whether it is prepared here."""
    settings = load_settings()
    prepared = prepared_models(settings.data_dir)
    serving = resolve_name(settings.base_model)
    for entry in catalog.load_catalog().values():
        mark = "*" if entry.name == serving else " "
        state = "prepared" if prepared[entry.name] else "not prepared"
        click.echo(
            f"{mark} {entry.name:<30} {entry.parameters / 1e9:.2f}B  {entry.size / 2**20:6.0f} MiB GGUF  "
            f"{entry.licence:<11} {state}"
        )
    if serving not in prepared:
        click.echo(f"* BASE_MODEL={serving} (not from the catalog)")


@click.command("model-server")
@click.option("--backend", type=click.Choice(["auto", "vllm", "transformers"]), default=None)
def model_server(backend: str | None) -> None:
    """Start the model server where MODEL_SERVER_URL points, with the active adapter loaded."""
    settings = load_settings()
    model_dir = prepare_base_model(settings.data_dir, settings.base_model)
    vllm_python = launch.find_vllm_python(settings.vllm_python)
    chosen = launch.choose_backend(backend or settings.model_backend, vllm_python)
    click.echo(
        f"Starting the {chosen} model server at {settings.model_server_url} (base model {model_dir.name})."
    )
    sys.exit(
        launch.run(
            launcher(settings, model_dir, chosen, vllm_python),
            settings.model_server_url,
            on_healthy=reconciler(settings),
        )
    )


def launcher(
    settings: Settings, model_dir: Path, chosen: str, vllm_python: Path | None
) -> Callable[[], launch.Launch]:
    """The command for each (re)start, with the adapter active in SQL at that moment preloaded."""

    def make_launch() -> launch.Launch:
        spec = launch.ServerSpec(
            model_dir=model_dir,
            url=settings.model_server_url,
            served_model_name=settings.served_model_name,
            max_lora_rank=settings.max_lora_rank,
            max_loras=settings.max_loras,
            max_model_len=settings.max_model_len,
            dtype=settings.vllm_dtype,
            adapters=_active_adapter_paths(settings),  # read again at every (re)start
        )
        # The key travels in the environment (both servers read VLLM_API_KEY), never in `ps`.
        key = settings.model_server_api_key.get_secret_value()
        secret = {"VLLM_API_KEY": key} if key else {}
        if chosen == "vllm":
            assert vllm_python is not None
            environment = launch.vllm_environment(kv_cache_gib=settings.vllm_kv_cache_gib)
            return launch.vllm_command(vllm_python, spec), {**environment, **secret}
        return launch.engine_command(spec), secret

    return make_launch


def reconciler(settings: Settings) -> Callable[[], object]:
    """After each (re)start and periodically: the server's adapters made to match SQL (the active
    one and the previous for rollback loaded, older versions unloaded)."""
    database = open_database(settings)

    def reconcile() -> object:
        with own_model_client(settings) as client:
            return promote.reconcile(database, client, keep=settings.keep_loaded_adapters)

    return reconcile


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
