"""A retrain as the settings describe it: what `chatbot retrain`, the scheduler and the benches run.

    retrain = Retrainer(settings, database)
    outcome = retrain(run_id=run.id)  # one queued RetrainRun: dataset, training, gate, promotion

The job's configuration (base model, limits, training and gate settings) is built on the first run,
so a scheduler starts at once and a process that never trains never loads a model.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from bot.knowledge import KnowledgeBase
from bot.knowledge.evaluate import load_questions
from bot.prompts import PromptStyle, build_messages
from chatbot.settings import Settings
from chatbot.wiring import model_client, open_knowledge, prompt_style, token_counter
from feedback.db import Database
from model_server import catalog, launch
from model_server.prepare import model_dir_for, prepare_base_model
from retrain.dataset import (
    Dataset,
    GroundedPromptBuilder,
    Message,
    PromptBuilder,
    Seed,
    build_dataset,
    grounded_query,
)
from retrain.gate import GateConfig, question_key
from retrain.pii import make_scrubber

if TYPE_CHECKING:  # torch and TRL: imported on the first run, not when a scheduler starts
    from retrain.job import JobConfig, RetrainOutcome
    from retrain.rollout import RolloutConfig
    from retrain.train import TrainConfig

T = TypeVar("T")


class Retrainer:
    """`knowledge`: the index the prompts are built over (default: the one in DATA_DIR)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        knowledge: KnowledgeBase | None = None,
        train: TrainConfig | None = None,
        progress: bool = True,
    ) -> None:
        self.settings, self.database, self._knowledge = settings, database, knowledge
        self.train, self.progress = train, progress

    @cached_property
    def config(self) -> JobConfig:
        return job_config(self.settings, train=self.train, progress=self.progress)

    def dataset(self) -> Dataset:
        if self._knowledge is None:
            self._knowledge = open_knowledge(self.settings)
        return training_data(self.settings, self.database, self._knowledge)

    def __call__(self, *, run_id: int) -> RetrainOutcome:
        from retrain.job import run_retrain

        with model_client(self.settings, timeout=300.0) as client:
            return run_retrain(
                self.config,
                self.database,
                client,
                run_id=run_id,
                dataset=self.dataset,
                key_facts=sample_key_facts(),
            )


def job_config(settings: Settings, *, train: TrainConfig | None = None, progress: bool = True) -> JobConfig:
    from retrain.job import JobConfig

    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    return JobConfig(
        adapters_dir=(settings.data_dir / "adapters").resolve(),
        base_model_dir=model_dir,
        base_model=settings.base_model or model_dir.name,
        adapter_prefix=settings.adapter_name,
        served_model_name=settings.served_model_name,
        max_lora_rank=settings.max_lora_rank,
        keep_loaded=settings.keep_loaded_adapters,
        canary_share=settings.canary_share,
        max_examples=settings.retrain_max_examples,
        train=train or train_config(settings),
        gate=GateConfig(margin=settings.gate_margin, loss_margin=settings.gate_loss_margin),
        progress=progress,
    )


def rollout_config(settings: Settings) -> RolloutConfig:
    """How a passing candidate earns its traffic (CANARY_*)."""
    from feedback.canary import Policy
    from retrain.rollout import RolloutConfig

    policy = Policy(
        min_votes=settings.canary_min_votes,
        max_votes=max(settings.canary_max_votes, settings.canary_min_votes),
        margin=settings.canary_margin,
    )
    return RolloutConfig(
        share=settings.canary_share,
        policy=policy,
        window=timedelta(hours=settings.canary_window_hours),
        keep=settings.keep_loaded_adapters,
    )


def train_config(settings: Settings) -> TrainConfig:
    """LoRA training as the settings bound it (RETRAIN_EPOCHS, RETRAIN_MAX_STEPS, RETRAIN_LEARNING_RATE,
    RETRAIN_TRAIN_MINUTES, RETRAIN_GRADIENT_CHECKPOINTING), the base model's catalog defaults where they
    are unset. Examples are as long as the dataset lets them be (MAX_MODEL_LEN): a shorter limit would
    cut the answer off the end of a long served conversation."""
    from retrain.train import TrainConfig

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


def training_data(settings: Settings, database: Database, knowledge: KnowledgeBase) -> Dataset:
    """The curated dataset from the feedback in `database`, with prompts built over `knowledge`."""
    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    # The sample questions are about the sample company's documents: they seed training only where
    # those documents are the knowledge base (SAMPLE_KNOWLEDGE), never beside a company's own.
    seeds = [
        Seed(q["id"], q["question"], q["answer"], q["split"])
        for q in (load_questions() if settings.sample_knowledge else [])
    ]
    served, grounded = prompt_builders(knowledge, prompt_style(settings), settings.max_model_len - 200)
    with database.reader() as session:
        return build_dataset(
            session,
            seeds=seeds,
            prompt_for=served,
            grounded_prompt_for=grounded,
            scrubber=make_scrubber(settings.pii_scrubber),
            count_tokens=token_counter(model_dir),
            max_tokens=settings.max_model_len,
            opted_out=settings.opt_out_users,
        )


def prompt_builders(
    kb: KnowledgeBase, style: PromptStyle, budget: int
) -> tuple[PromptBuilder, GroundedPromptBuilder]:
    """The prompt the bot would serve for a question today (for sample questions), and the one with
    the passages retrieved for a question and its corrected answer (a correction's grounded twin)."""

    def served(question: str) -> list[Message]:
        return build_messages(question, kb.search(question, k=5), style=style, budget=budget)[0]

    def grounded(question: str, answer: str) -> list[Message]:
        return build_messages(
            question, kb.search(grounded_query(question, answer), k=5), style=style, budget=budget
        )[0]

    return served, grounded
