"""`chatbot feedback export|opt-out|opt-in` and `chatbot adapters list`."""

from __future__ import annotations

from pathlib import Path

import click

from bot.knowledge import KnowledgeBase
from bot.knowledge.evaluate import load_questions
from bot.prompts import PromptStyle, build_messages
from chatbot.common import load_settings
from chatbot.settings import Settings
from chatbot.wiring import open_database, open_knowledge, prompt_style, token_counter
from feedback import queries, store
from model_server.prepare import prepare_base_model
from retrain.dataset import (
    Dataset,
    GroundedPromptBuilder,
    Message,
    PromptBuilder,
    Seed,
    build_dataset,
    grounded_query,
)
from retrain.export import FORMATS, export
from retrain.pii import Scrubber


@click.group()
def feedback() -> None:
    """Training data from what users taught the bot."""


def prompt_builders(settings: Settings) -> tuple[PromptBuilder, GroundedPromptBuilder]:
    """The prompt the bot would serve for a question today (for sample questions), and the one with
    the passages retrieved for a question and its corrected answer (a correction's grounded twin)."""
    return prompt_builders_over(
        open_knowledge(settings), prompt_style(settings), settings.max_model_len - 200
    )


def prompt_builders_over(
    kb: KnowledgeBase, style: PromptStyle, budget: int
) -> tuple[PromptBuilder, GroundedPromptBuilder]:
    """`prompt_builders` over a given knowledge base (the learning bench's copy of the index)."""

    def served(question: str) -> list[Message]:
        return build_messages(question, kb.search(question, k=5), style=style, budget=budget)[0]

    def grounded(question: str, answer: str) -> list[Message]:
        return build_messages(
            question, kb.search(grounded_query(question, answer), k=5), style=style, budget=budget
        )[0]

    return served, grounded


def build_training_data(settings: Settings) -> Dataset:
    database = open_database(settings)
    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    # The sample questions are about the sample company's documents: they seed training only where
    # those documents are the knowledge base (SAMPLE_KNOWLEDGE), never beside a company's own.
    seeds = [
        Seed(q["id"], q["question"], q["answer"], q["split"])
        for q in (load_questions() if settings.sample_knowledge else [])
    ]
    served, grounded = prompt_builders(settings)
    with database.reader() as session:
        return build_dataset(
            session,
            seeds=seeds,
            prompt_for=served,
            grounded_prompt_for=grounded,
            scrubber=Scrubber(),
            count_tokens=token_counter(model_dir),
            max_tokens=settings.max_model_len,
            opted_out=settings.opt_out_users,
        )


@feedback.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="openai-chat", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--split", type=click.Choice(["train", "validation", "all"]), default="all", show_default=True)
def export_command(fmt: str, output: Path, split: str) -> None:
    """Write the curated dataset as JSONL (OpenAI chat, KTO or DPO)."""
    dataset = build_training_data(load_settings())
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
