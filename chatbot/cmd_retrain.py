"""`chatbot retrain` and `chatbot adapters promote|rollback|reconcile`. The retrain itself is
`chatbot.retraining.Retrainer`, as the scheduler runs it."""

from __future__ import annotations

import getpass
from dataclasses import replace

import click

from chatbot.cmd_feedback import adapters
from chatbot.common import load_settings
from chatbot.retraining import Retrainer, train_config
from chatbot.wiring import model_client, open_database
from feedback import queries, store
from feedback.models import utcnow
from retrain import promote
from retrain.schedule import STALE_AFTER


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
    outcome = Retrainer(settings, database, train=train)(run_id=run.id)
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
    with model_client(settings) as client:
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
    with model_client(settings) as client:
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
    with model_client(settings) as client:
        report = promote.reconcile(database, client, keep=settings.keep_loaded_adapters)
    with database.reader() as session:
        active = queries.active_adapter(session)
    click.echo(f"Active: {active.name if active else 'base model'}; {report.summary()}.")
