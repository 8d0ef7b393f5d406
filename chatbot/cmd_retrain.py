"""`chatbot retrain` and `chatbot adapters promote|rollback|reconcile`, and the retrain job's wiring.

`retrainer(settings)` is what the scheduler and the admin commands run: a callable
`(*, run_id) -> RetrainOutcome` with the database, the model client, the dataset and the
configuration bound from the settings.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

import click

from bot.knowledge.evaluate import load_questions
from chatbot.cmd_feedback import adapters, build_training_data
from chatbot.common import load_settings
from chatbot.settings import Settings
from chatbot.wiring import open_database
from feedback import queries, store
from feedback.db import Database
from feedback.models import utcnow
from model_server import catalog, launch
from model_server.client import ModelClient
from model_server.prepare import model_dir_for, prepare_base_model
from retrain import promote
from retrain.gate import GateConfig, question_key
from retrain.job import JobConfig, RetrainOutcome, run_retrain
from retrain.schedule import STALE_AFTER
from retrain.train import TrainConfig

RetrainFn = Callable[..., RetrainOutcome]
T = TypeVar("T")


def job_config(settings: Settings, *, train: TrainConfig | None = None, progress: bool = True) -> JobConfig:
    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    return JobConfig(
        adapters_dir=(settings.data_dir / "adapters").resolve(),
        base_model_dir=model_dir,
        base_model=settings.base_model or model_dir.name,
        adapter_prefix=settings.adapter_name,
        served_model_name=settings.served_model_name,
        max_lora_rank=settings.max_lora_rank,
        keep_loaded=settings.keep_loaded_adapters,
        max_examples=settings.retrain_max_examples,
        train=train or train_config(settings),
        gate=GateConfig(margin=settings.gate_margin, loss_margin=settings.gate_loss_margin),
        progress=progress,
    )


def train_config(settings: Settings) -> TrainConfig:
    """LoRA training as the settings bound it (RETRAIN_EPOCHS, RETRAIN_MAX_STEPS, RETRAIN_LEARNING_RATE,
    RETRAIN_TRAIN_MINUTES, RETRAIN_GRADIENT_CHECKPOINTING), the base model's catalog defaults where they
    are unset. Examples are as long as the dataset lets them be (MAX_MODEL_LEN): a shorter limit would
    cut the answer off the end of a long served conversation."""
    defaults = catalog.retrain_defaults(settings.base_model)
    minutes = _chosen(settings.retrain_train_minutes, defaults.train_minutes)
    checkpointing = _chosen(settings.retrain_gradient_checkpointing, defaults.gradient_checkpointing)
    return replace(
        TrainConfig(),
        dtype=launch.training_dtype(model_dir_for(settings.data_dir, settings.base_model)),
        max_length=settings.max_model_len,
        epochs=_chosen(settings.retrain_epochs, defaults.epochs),
        max_steps=settings.retrain_max_steps,
        learning_rate=_chosen(settings.retrain_learning_rate, defaults.learning_rate),
        time_budget_s=minutes * 60,
        gradient_checkpointing=checkpointing,
    )


def _chosen(setting: T | None, default: T) -> T:
    return default if setting is None else setting


def sample_key_facts() -> dict[str, str]:
    """Key facts of the sample questions, by question text (both wordings)."""
    facts: dict[str, str] = {}
    for q in load_questions():
        for text in (q["question"], q.get("reworded") or ""):
            if text:
                facts[question_key(text)] = q["key_fact"]
    return facts


def retrainer(
    settings: Settings,
    *,
    database: Database | None = None,
    train: TrainConfig | None = None,
    progress: bool = True,
) -> RetrainFn:
    """`retrain(run_id=...)`: run one queued RetrainRun with everything bound from the settings."""
    database = database or open_database(settings)
    config = job_config(settings, train=train, progress=progress)

    def retrain(*, run_id: int) -> RetrainOutcome:
        with ModelClient(settings.model_server_url, timeout=300.0) as client:
            return run_retrain(
                config,
                database,
                client,
                run_id=run_id,
                dataset=partial(build_training_data, settings),
                key_facts=sample_key_facts(),
            )

    return retrain


def _actor(value: str | None) -> str:
    return value or getpass.getuser()


@click.command("retrain")
@click.option("--as", "actor", default=None, help="Who asked for it (default: your OS user).")
@click.option("--max-steps", type=int, default=None, help="Stop training after this many steps.")
@click.option("--epochs", type=float, default=None, help="Passes over the training data.")
def retrain_command(actor: str | None, max_steps: int | None, epochs: float | None) -> None:
    """Retrain now: dataset, LoRA training, validation gate, then promote or discard."""
    settings = load_settings()
    database = open_database(settings)
    train = train_config(settings)
    if max_steps is not None:
        train = replace(train, max_steps=max_steps)
    if epochs is not None:
        train = replace(train, epochs=epochs)
    with database.writer() as session:
        # A run left `running` by a killed process would refuse this one (and every later one).
        for stale in store.reap_stale_runs(session, older_than=utcnow() - STALE_AFTER):
            click.echo(f"Run #{stale} had stopped without finishing (its process is gone): recorded failed.")
        run = store.queue_run(session, trigger="cli", requested_by=_actor(actor))
    assert run.id is not None
    click.echo(f"Retrain run #{run.id} started.")
    outcome = retrainer(settings, database=database, train=train)(run_id=run.id)
    click.echo(
        f"Run #{outcome.run_id} {outcome.status}" + (f": {outcome.adapter}" if outcome.adapter else "")
    )
    if outcome.reason:
        click.echo(f"  {outcome.reason}")
    if outcome.loss_curve:
        click.echo(f"  loss curve: {outcome.loss_curve}")
    if outcome.status == "failed":
        raise SystemExit(1)


@adapters.command("promote")
@click.argument("name")
@click.option("--as", "actor", default=None, help="Who did it (default: your OS user).")
def adapters_promote(name: str, actor: str | None) -> None:
    """Make adapter NAME serve (loaded and checked on the model server first)."""
    settings = load_settings()
    with ModelClient(settings.model_server_url) as client:
        promote.promote(
            open_database(settings),
            client,
            name=name,
            actor=_actor(actor),
            keep=settings.keep_loaded_adapters,
            reason="chatbot adapters promote",
        )
    click.echo(f"{name} is now active.")


@adapters.command("rollback")
@click.option("--as", "actor", default=None, help="Who did it (default: your OS user).")
def adapters_rollback(actor: str | None) -> None:
    """Go back to the adapter that served before the current one."""
    settings = load_settings()
    with ModelClient(settings.model_server_url) as client:
        now = promote.rollback(
            open_database(settings),
            client,
            actor=_actor(actor),
            keep=settings.keep_loaded_adapters,
            reason="chatbot adapters rollback",
        )
    click.echo(f"Rolled back: {now.name if now else 'the base model'} is serving.")


@adapters.command("reconcile")
def adapters_reconcile() -> None:
    """Load into the model server what SQL says should serve; unload old versions."""
    settings = load_settings()
    database = open_database(settings)
    with ModelClient(settings.model_server_url) as client:
        report = promote.reconcile(database, client, keep=settings.keep_loaded_adapters)
    with database.reader() as session:
        active = queries.active_adapter(session)
    click.echo(f"Active: {active.name if active else 'base model'}; {report.summary()}.")
