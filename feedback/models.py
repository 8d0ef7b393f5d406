"""The tables. Statuses are plain strings guarded by CHECK constraints, so SQLite and
PostgreSQL share one schema and one set of migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    LargeBinary,
    Unicode,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

PLATFORMS = ("slack", "teams", "web", "cli")
VOTE_SOURCES = ("button", "reaction", "teams_feedback", "console")
CORRECTION_STATUSES = ("pending", "approved", "rejected")
REVIEW_DECISIONS = ("approve", "reject")
# Who put a case in the review queue: a person's correction, or the sampler (an answer nobody voted on).
CORRECTION_ORIGINS = ("user", "sampled")
# What an approval of a sampled case keeps: the bot's answer, the teacher's draft, the reviewer's edit.
REVIEW_CHOICES = ("bot", "draft", "edit")
# Why a corrected or 👎 answer was wrong: the passages lacked the answer, or the model missed it.
TRIAGE_KINDS = ("retrieval", "generation")
ADAPTER_STATUSES = ("candidate", "active", "retired", "failed")
# "canary": the gate passed and the candidate serves a share of questions until the votes decide;
# "rolled_back": the votes (or an admin) sent it back during its canary.
RUN_STATUSES = ("queued", "running", "promoted", "rejected", "failed", "skipped", "canary", "rolled_back")
# A canary collects votes ("running"), or has run out of looks or time for admins to decide
# ("undecided"; it keeps its share meanwhile); then it is promoted, rolled back or stopped by an admin.
CANARY_STATUSES = ("running", "undecided", "promoted", "rolled_back", "stopped")
CANARY_OPEN = ("running", "undecided")
RUN_TRIGGERS = ("schedule", "admin", "cli")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _when(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kw)


class Question(SQLModel, table=True):
    __table_args__ = (CheckConstraint(_in("platform", PLATFORMS), name="ck_question_platform"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    workspace: str = Field(default="", max_length=64)
    channel: str = Field(default="", max_length=128)
    thread: str = Field(default="", max_length=128)
    user_id: str = Field(max_length=128, index=True)
    text: str
    created_at: datetime = _when()


class Answer(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("platform", "reply_channel", "reply_ref", name="uq_answer_reply"),)

    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="question.id", index=True)
    platform: str = Field(max_length=16)
    text: str
    passage_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The messages exactly as the model saw them, so training data is the conversation as served.
    prompt: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The passages it cited ({"id", "title", "source", "url"}), for reviewers and re-review checks.
    sources: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    adapter: str = Field(max_length=128, index=True)
    confidence: float | None = None
    latency_ms: int | None = None
    # Where the platform shows it: Slack channel + message ts, Teams conversation + activity id.
    reply_channel: str | None = Field(default=None, max_length=128)
    reply_ref: str | None = Field(default=None, max_length=256)
    # A reviewed answer: the approved correction served verbatim instead of asking the model.
    # (No foreign key: correction already points at answer, and the cycle buys nothing.)
    reviewed_correction_id: int | None = Field(default=None, index=True)
    # Retrieval's cosine between the question and its closest passage: how relevant the context was.
    relevance: float | None = None
    created_at: datetime = _when()


class Vote(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("answer_id", "user_id", name="uq_vote_answer_user"),
        CheckConstraint("value IN (-1, 1)", name="ck_vote_value"),
        CheckConstraint(_in("source", VOTE_SOURCES), name="ck_vote_source"),
        CheckConstraint(f"triage IS NULL OR {_in('triage', TRIAGE_KINDS)}", name="ck_vote_triage"),
    )

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True)
    user_id: str = Field(max_length=128)
    value: int
    source: str = Field(max_length=16)
    comment: str | None = None
    # A 👎's why (feedback.triage): the comment's, or its author's correction's; None: not known.
    triage: str | None = Field(default=None, max_length=16)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class Correction(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint(_in("status", CORRECTION_STATUSES), name="ck_correction_status"),
        CheckConstraint(_in("origin", CORRECTION_ORIGINS), name="ck_correction_origin"),
        CheckConstraint(f"triage IS NULL OR {_in('triage', TRIAGE_KINDS)}", name="ck_correction_triage"),
        # The database itself refuses to queue one answer twice.
        Index(
            "uq_correction_sampled_answer",
            "answer_id",
            unique=True,
            sqlite_where=text("origin = 'sampled'"),
            postgresql_where=text("origin = 'sampled'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True)
    author: str = Field(max_length=128)
    text: str
    status: str = Field(default="pending", max_length=16, index=True)
    created_at: datetime = _when()
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Starts at 1; a correction sent back for another review (a page it relied on changed) starts a
    # new round, and only the current round's reviews count.
    review_round: int = Field(default=1)
    stale_reason: str | None = None  # why it is back in the queue, shown to reviewers
    # Whether the passages the answer was given held what the correction says (feedback.triage).
    triage: str | None = Field(default=None, max_length=16)
    # The review card in the review channel (Slack channel id and message ts), to update it.
    card_channel: str | None = Field(default=None, max_length=128)
    card_ref: str | None = Field(default=None, max_length=64)
    # Where to tell the author about the decision, on a platform that cannot simply message a user
    # id: for Teams, the conversation reference (as botbuilder serializes it) of the chat the
    # correction came from. None elsewhere (Slack opens a DM with the author's id).
    author_conversation: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    origin: str = Field(default="user", max_length=16, sa_column_kwargs={"server_default": "user"})
    # Why the sampler queued it ("low_confidence", "low_relevance", "teacher_disagrees"), for reviewers.
    reasons: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    uncertainty: float | None = None  # the sampler's score: the least certain answers first
    # A stronger model's answer to the same question from the same passages, for reviewers to confirm.
    draft: str | None = None
    draft_model: str | None = Field(default=None, max_length=128)
    drafted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    draft_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Review(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("correction_id", "reviewer", "review_round", name="uq_review_reviewer_round"),
        CheckConstraint(_in("decision", REVIEW_DECISIONS), name="ck_review_decision"),
        CheckConstraint(f"choice IS NULL OR {_in('choice', REVIEW_CHOICES)}", name="ck_review_choice"),
    )

    id: int | None = Field(default=None, primary_key=True)
    correction_id: int = Field(foreign_key="correction.id", index=True)
    reviewer: str = Field(max_length=128)
    review_round: int = Field(default=1)
    decision: str = Field(max_length=16)
    reason: str | None = None
    edited_text: str | None = None
    choice: str | None = Field(default=None, max_length=8)  # a sampled case's approval: what it keeps
    created_at: datetime = _when()


class OptOut(SQLModel, table=True):
    """A person who asked that their messages never become training data."""

    user_id: str = Field(primary_key=True, max_length=128)
    created_at: datetime = _when()


class ProcessedEvent(SQLModel, table=True):
    """A platform delivery we have handled; a retry with the same key is dropped."""

    key: str = Field(primary_key=True, max_length=255)
    created_at: datetime = _when()


class Erasure(SQLModel, table=True):
    """A person forgotten on request: when, and how much went; never who (that is the point)."""

    id: int | None = Field(default=None, primary_key=True)
    questions: int = 0
    answers: int = 0
    votes: int = 0
    corrections: int = 0
    erased_at: datetime = _when(index=True)


class KeptEvent(SQLModel, table=True):
    """A question acknowledged to the platform and not yet answered: whichever bot replica `owner`
    is answers it; if that replica stops beating (`BotReplica`), another takes it over."""

    __tablename__ = "kept_event"

    key: str = Field(primary_key=True, max_length=255)
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    owner: str = Field(max_length=255, index=True)
    attempts: int = Field(default=1)
    received_at: datetime = _when()
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)


class BotReplica(SQLModel, table=True):
    """A running bot process, and when it last said so."""

    __tablename__ = "bot_replica"

    id: str = Field(primary_key=True, max_length=255)
    seen_at: datetime = _when()


class AdapterVersion(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint(_in("status", ADAPTER_STATUSES), name="ck_adapter_status"),
        # The database itself refuses a second active adapter.
        Index(
            "uq_adapter_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    path: str
    base_model: str
    parent: str | None = Field(default=None, max_length=128)
    dataset_hash: str = Field(default="", max_length=128)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="candidate", max_length=16)
    created_at: datetime = _when()
    activated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    retired_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class AdapterChange(SQLModel, table=True):
    """Who switched the active adapter, from what to what (None means the base model)."""

    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(max_length=16)
    from_name: str | None = Field(default=None, max_length=128)
    to_name: str | None = Field(default=None, max_length=128)
    actor: str = Field(max_length=128)
    reason: str | None = None
    created_at: datetime = _when()


class RetrainRun(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="ck_run_status"),
        CheckConstraint(_in("trigger", RUN_TRIGGERS), name="ck_run_trigger"),
        # One run at a time, across every process that shares the database.
        Index(
            "uq_run_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    trigger: str = Field(max_length=16)
    requested_by: str | None = Field(default=None, max_length=128)
    status: str = Field(default="queued", max_length=16, index=True)
    candidate: str | None = Field(default=None, max_length=128)
    decision: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    created_at: datetime = _when()
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Moved forward every few seconds while the run works (retrain.heartbeat); a running run
    # silent for too long was abandoned (its process killed) and is reaped (store.reap_stale_runs).
    heartbeat_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Canary(SQLModel, table=True):
    """A candidate adapter serving `share` of the conversation threads beside the live model, until
    the 👍/👎 of its answers and live's since `started_at` decide (`feedback.canary`). Steps (started,
    each look, the decision) are kept in `steps`; `posted` counts those already sent to admins."""

    __table_args__ = (
        CheckConstraint(_in("status", CANARY_STATUSES), name="ck_canary_status"),
        CheckConstraint("share > 0 AND share < 1", name="ck_canary_share"),
        # The database itself refuses a second open canary.
        Index(
            "uq_canary_one_open",
            "is_open",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    candidate: str = Field(max_length=128)
    live: str = Field(max_length=128)  # the model name live answers carry: an adapter, or the base's
    share: float
    status: str = Field(default="running", max_length=16)
    is_open: bool | None = Field(default=True)  # True while running or undecided, else NULL (unique)
    run_id: int | None = None
    looks_done: int = 0
    reason: str | None = None
    decided_by: str | None = Field(default=None, max_length=128)
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    posted: int = 0
    started_at: datetime = _when()
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class SchedulerJob(SQLModel, table=True):
    """APScheduler's job store (`SQLAlchemyJobStore`'s own layout), declared here so that the
    migrations create it and the schema check knows it; only the scheduler reads or writes it."""

    __tablename__ = "apscheduler_jobs"

    id: str = Field(sa_column=Column(Unicode(191), primary_key=True))
    next_run_time: float | None = Field(default=None, sa_column=Column(Float(25), index=True))
    job_state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AdminRefusal(SQLModel, table=True):
    """An admin command or console admin action someone was refused: who, where, what. Written at
    a bounded rate (`store.record_refusal`), so a flood of attempts cannot fill the database."""

    __table_args__ = (Index("ix_adminrefusal_user_created", "user_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)  # slack, teams, web (the console)
    # The platform's user id; on the console the signed-in identity, else the client's address.
    user_id: str = Field(max_length=128)
    place: str = Field(default="", max_length=256)  # channel, conversation or console route
    command: str = Field(max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)
