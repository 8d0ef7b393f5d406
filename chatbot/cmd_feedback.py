"""`chatbot feedback export|opt-out|opt-in` and `chatbot adapters list`."""

from __future__ import annotations

from pathlib import Path

import click

from chatbot.common import load_settings
from chatbot.retraining import training_data
from chatbot.wiring import open_database, open_knowledge, review_desk
from feedback import queries, store
from retrain.export import FORMATS, export


@click.group()
def feedback() -> None:
    """Training data from what users taught the bot."""


@feedback.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="openai-chat", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--split", type=click.Choice(["train", "validation", "all"]), default="all", show_default=True)
def export_command(fmt: str, output: Path, split: str) -> None:
    """Write the curated dataset as JSONL (OpenAI chat, KTO or DPO)."""
    settings = load_settings()
    database = open_database(settings)
    try:
        dataset = training_data(settings, database, open_knowledge(settings))
    finally:
        database.dispose()
    examples = dataset.examples if split == "all" else [e for e in dataset.examples if e.split == split]
    report = export(examples, fmt, output)
    click.echo(f"Wrote {report.written} examples to {output} (dataset {dataset.hash}).")
    for reason, count in sorted({**dataset.dropped, **report.dropped}.items()):
        click.echo(f"  dropped {count}: {reason}")
    for kind, count in sorted(dataset.scrubbed.items()):
        click.echo(f"  scrubbed {count} x {kind}")


@feedback.command("opt-out")
@click.argument("user_id")
def opt_out(user_id: str) -> None:
    """Never use this person's messages as training data."""
    with open_database(load_settings()).writer() as session:
        added = store.opt_out(session, user_id=user_id)
    click.echo(f"{user_id} {'opted out' if added else 'had already opted out'}.")


@feedback.command("forget")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget(user_id: str, yes: bool) -> None:
    """Delete a person's questions, answers, votes and corrections (a privacy request)."""
    if not yes:
        click.confirm(f"Delete everything {user_id} asked, voted and suggested?", abort=True)
    settings = load_settings()
    database = open_database(settings)
    try:
        desk = review_desk(settings, database=database, knowledge=open_knowledge(settings))
        gone = desk.forget(user_id)
    finally:
        database.dispose()
    click.echo(
        f"Deleted for {user_id}: {gone.questions} questions, {gone.answers} answers, {gone.votes} votes, "
        f"{len(gone.corrections)} corrections and review cases ({gone.reviews} reviews of them), "
        f"{gone.refusals} refused admin attempts."
    )
    click.echo(
        "The next retrain trains without them; adapters trained before keep what they learned "
        "(`chatbot rollback` or a retrain replaces them)."
    )


@feedback.command("opt-in")
@click.argument("user_id")
def opt_in(user_id: str) -> None:
    """Undo an opt-out."""
    with open_database(load_settings()).writer() as session:
        removed = store.opt_in(session, user_id=user_id)
    click.echo(f"{user_id} {'opted back in' if removed else 'had not opted out'}.")


@click.group()
def adapters() -> None:
    """LoRA adapter versions."""


@adapters.command("list")
def adapters_list() -> None:
    """List adapter versions, the active one marked."""
    database = open_database(load_settings())
    with database.reader() as session:
        rows = queries.list_adapters(session)
    if not rows:
        click.echo("No adapters yet: the base model is serving.")
    for row in rows:
        mark = "*" if row.status == "active" else " "
        click.echo(f"{mark} {row.name:<24} {row.status:<10} parent={row.parent or 'base'} {row.path}")
