"""Builds the long-lived collaborators (database, knowledge base, model client, pipeline) from
settings. This is the one place where the packages meet, so bot/ and retrain/ stay independent."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.admin import AdminCommands
from bot.knowledge.embedder import load_embedder
from bot.knowledge.kb import KnowledgeBase
from bot.pipeline import Pipeline
from bot.prompts import PromptStyle, TokenCounter
from bot.review.desk import ReviewDesk, ReviewPolicy
from bot.review.reviewed_answers import ReviewedAnswers
from bot.routing import CanaryRoute
from chatbot.settings import Settings
from feedback import queries
from feedback.db import Database
from model_server import catalog, replicas
from model_server.client import AsyncModelClient, ModelClient
from model_server.prepare import prepare_base_model

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "bot" / "knowledge" / "sample"


def open_database(settings: Settings) -> Database:
    return Database(settings.sqlalchemy_url)


def index_dir(settings: Settings) -> Path:
    return settings.data_dir / "index"


def open_knowledge(settings: Settings, *, defer_embedder: bool = False) -> KnowledgeBase:
    """`defer_embedder`: load the embedding model only once something needs embedding (ingesting
    files that may well be unchanged), not before."""
    embedder = load_embedder(settings.embedding_model or None, defer=defer_embedder)
    return KnowledgeBase.open(index_dir(settings), embedder)


def token_counter(model_dir: Path) -> TokenCounter:
    """Counts with the served model's own tokenizer, so prompts fit its context exactly."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def model_client(settings: Settings, *, timeout: float = 120.0, retries: int = 2) -> ModelClient:
    """A client of every model server replica (MODEL_SERVER_REPLICAS, else MODEL_SERVER_URL) that
    sends MODEL_SERVER_API_KEY."""
    key = settings.model_server_api_key.get_secret_value()
    return replicas.connect(settings.model_servers, timeout=timeout, retries=retries, api_key=key)


def own_model_client(settings: Settings) -> ModelClient:
    """A client of this process's own model server (MODEL_SERVER_URL): what `chatbot model-server`
    started and keeps in step."""
    key = settings.model_server_api_key.get_secret_value()
    return ModelClient(settings.model_server_url, api_key=key)


def async_model_client(settings: Settings) -> AsyncModelClient:
    key = settings.model_server_api_key.get_secret_value()
    return replicas.async_connect(settings.model_servers, api_key=key)


def active_model(database: Database, served_model_name: str, ttl: float = 2.0) -> Callable[[], str]:
    """The name to send as `model`: the active adapter recorded in SQL, or the base model.
    Read at most every `ttl` seconds, so a promotion reaches every bot replica within that."""
    cache: dict[str, float | str] = {"at": 0.0, "name": served_model_name}

    def current() -> str:
        if time.monotonic() - float(cache["at"]) > ttl:
            with database.reader() as session:
                active = queries.active_adapter(session)
            cache["name"] = active.name if active else served_model_name
            cache["at"] = time.monotonic()
        return str(cache["name"])

    return current


def prompt_style(settings: Settings) -> PromptStyle:
    return PromptStyle(company=settings.company_name, fallback=settings.fallback_contact)


def build_pipeline(
    settings: Settings, *, database: Database | None = None, knowledge: KnowledgeBase | None = None
) -> Pipeline:
    database = database or open_database(settings)
    knowledge = knowledge or open_knowledge(settings)
    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    return Pipeline(
        retriever=knowledge,
        client=async_model_client(settings),
        model_name=active_model(database, settings.served_model_name),
        database=database,
        count_tokens=token_counter(model_dir),
        max_model_len=settings.max_model_len,
        max_answer_tokens=settings.answer_max_tokens,
        style=prompt_style(settings),
        reviewed=reviewed_answers(settings, database, knowledge),
        answer_timeout=settings.answer_timeout_seconds,
        grounding_threshold=grounding_threshold(settings),
        route=CanaryRoute(database),
    )


def grounding_threshold(settings: Settings) -> float:
    """GROUNDING_THRESHOLD, or the base model's own where it is unset."""
    if settings.grounding_threshold is not None:
        return settings.grounding_threshold
    return catalog.grounding_threshold(settings.base_model)


def reviewed_answers(settings: Settings, database: Database, knowledge: KnowledgeBase) -> ReviewedAnswers:
    """Approved corrections as the pipeline uses them: reviewed answers above
    REVIEWED_ANSWER_SIMILARITY, first in the context below it, neither with CORRECTION_RECALL off.
    Their questions are embedded with the knowledge base's own embedder."""
    return ReviewedAnswers(
        database,
        knowledge.embedder,
        threshold=settings.reviewed_answer_similarity,
        recall=settings.correction_recall,
    )


def review_policy(settings: Settings) -> ReviewPolicy:
    return ReviewPolicy.of(
        reviewers=settings.reviewers,
        admins=settings.admin_users,
        approvals_required=settings.approvals_required,
        recall=settings.correction_recall,
    )


def review_desk(
    settings: Settings, *, database: Database | None = None, knowledge: KnowledgeBase | None = None
) -> ReviewDesk:
    """The review queue; approved corrections go into `knowledge` (the bot's own open index, so its
    next answer sees them; any other process's index sees them within its reload interval)."""
    return ReviewDesk(
        database or open_database(settings),
        review_policy(settings),
        knowledge=knowledge or open_knowledge(settings),
        scrub=scrubbing(settings),
    )


def scrubbing(settings: Settings) -> Callable[[str, Sequence[str]], str]:
    """PII_SCRUBBER's scrub, letting through what `published` (company documents) says."""

    def scrub(text: str, published: Sequence[str]) -> str:
        from retrain.pii import make_scrubber  # Presidio loads spaCy: only once something is indexed

        scrubber = make_scrubber(settings.pii_scrubber)
        scrubber.allow(published)
        return scrubber.scrub(text)

    return scrub


def admin_commands(settings: Settings, database: Database) -> AdminCommands | None:
    """`/chatbot retrain|status|rollback|adapters` for ADMIN_USERS; None when there are none.
    A rollback also loads the previous adapter in the model server before the pointer moves."""
    if not settings.admin_users:
        return None
    return admin_actions(settings, database)


def admin_actions(settings: Settings, database: Database) -> AdminCommands:
    """The same commands for callers that vouch for the admin themselves (the browser console,
    whose admins sign in with ADMIN_TOKEN): `retrain_now`, `roll_back`."""

    def rollback(actor: str) -> None:
        from retrain.promote import rollback as roll_back

        with model_client(settings) as client:
            roll_back(
                database, client, actor=actor, keep=settings.keep_loaded_adapters, reason="/chatbot rollback"
            )

    def canary(action: str, actor: str) -> None:
        from retrain import rollout

        keep = settings.keep_loaded_adapters
        with model_client(settings) as client:
            if action == "promote":
                rollout.promote_now(database, client, actor=actor, keep=keep)
            else:
                rollout.stop(database, client, actor=actor, keep=keep)

    return AdminCommands(database, admins=settings.admin_users, rollback=rollback, canary=canary)
