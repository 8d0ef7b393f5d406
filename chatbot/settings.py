"""Typed settings, read once per process from the environment and a `.env` file.

This is the only module that reads the environment. Everything else receives a `Settings`
(or plain values taken from it) from its caller. Every field is documented in README.md;
`tests/chatbot/test_settings.py` fails when one is not.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import SettingsError

__all__ = ["Settings", "SettingsError", "get_settings"]

# Values people paste from examples and forget to replace.
_PLACEHOLDER = re.compile(
    r"^(changeme|changethis|change-me|placeholder|todo|xxx+|secret|<.*>)$|your[-_]", re.I
)

# Secrets that must not be placeholders outside development.
SECRET_FIELDS = (
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "microsoft_app_password",
    "admin_token",
)


_CONSOLE_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
MIN_CONSOLE_TOKEN = 16


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses placeholder secrets."
    )
    data_dir: Path = Field(Path("data"), description="Where the model, index, adapters and SQLite file live.")
    log_level: str = Field("INFO", description="Python logging level.")

    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in DATA_DIR.")

    model_server_url: str = Field("http://127.0.0.1:8000", description="Base URL of the model server.")
    model_server_replicas: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated base URLs of every model server replica the bot and scheduler use "
        "(questions spread over them; a promotion loads the adapter into all first). Empty: "
        "MODEL_SERVER_URL alone. Each `chatbot model-server` still serves its own MODEL_SERVER_URL.",
    )
    model_server_api_key: SecretStr = Field(
        SecretStr(""),
        description="The model server wants this bearer token on every /v1 request (vLLM's --api-key; "
        "`chatbot model-server` starts it so), adapters included; every client sends it. Empty: open.",
    )
    answer_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="The longest an asker waits on the model (for each next piece, when streamed) "
        "before being told the answer is late; the question stays recorded.",
    )
    answer_max_tokens: int = Field(
        200,
        ge=8,
        description="The longest answer the model may write, in tokens (the prompt gets the rest of "
        "MAX_MODEL_LEN).",
    )
    bot_replica_timeout_seconds: float = Field(
        30.0,
        ge=3,
        description="How long a bot replica may go without saying it is alive (every tenth of this, "
        "in SQL) before another answers the questions it acknowledged but never answered.",
    )
    model_backend: Literal["auto", "vllm", "transformers"] = Field(
        "auto", description="Which server `chatbot model-server` starts; auto prefers vLLM."
    )
    base_model: str = Field(
        "",
        description="A catalog name (`chatbot model list`), a local model directory, a GGUF file or a hub "
        "id; empty means the catalog's default, Qwen2.5-Coder-1.5B-Instruct.",
    )
    served_model_name: str = Field("base", description="Name under which the base model is served.")
    max_model_len: int = Field(2048, ge=256, description="Context length the model server is started with.")
    vllm_python: str = Field(
        "", description="Python of the vLLM environment; empty means .venv-vllm/bin/python."
    )
    vllm_kv_cache_gib: int = Field(2, ge=1, description="CPU KV cache for vLLM, in GiB.")
    vllm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="vLLM's --dtype; auto: float32 on a CPU without bfloat16 instructions, else the model's.",
    )
    max_lora_rank: int = Field(16, ge=1, description="Largest LoRA rank the model server accepts.")
    max_loras: int = Field(3, ge=1, description="Adapters loaded at once (active, candidate, previous).")
    sample_knowledge: bool = Field(True, description="`chatbot setup` ingests the sample knowledge base.")
    embedding_model: str = Field(
        "", description="Sentence-transformers model dir or id; empty means the bundled all-MiniLM-L6-v2."
    )

    company_name: str = Field(
        "Larkspur Systems", description="The company the bot speaks for, in its prompt."
    )
    fallback_contact: str = Field(
        "your manager or the team that owns the topic",
        description="Where the bot sends people when the documents do not answer.",
    )

    port: int = Field(3000, ge=1, le=65535, description="The bot's HTTP port.")
    slack_bot_token: SecretStr = Field(SecretStr(""), description="Slack bot token (xoxb-...).")
    slack_signing_secret: SecretStr = Field(SecretStr(""), description="Slack signing secret (HTTP mode).")
    slack_app_token: SecretStr = Field(SecretStr(""), description="Slack app-level token (xapp-...).")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    microsoft_app_id: str = Field("", description="Bot Framework app id; empty turns auth off.")
    microsoft_app_password: SecretStr = Field(SecretStr(""), description="Bot Framework app password.")
    microsoft_app_tenant_id: str = Field("", description="Tenant id for single-tenant Teams bots.")
    teams_allow_unauthenticated: bool = Field(
        False,
        description="Without MICROSOFT_APP_ID, accept Teams activities from any address, not only the "
        "Emulator on this machine: anyone who reaches PORT can then post as anyone (admin commands stay "
        "off).",
    )

    admin_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated user ids allowed to run admin commands."
    )
    opt_out_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated user ids whose messages never become training data.",
    )
    admin_token: SecretStr = Field(
        SecretStr(""),
        description="One shared token for the console's admin pages (signs in as console:admin).",
    )
    console_users: SecretStr = Field(
        SecretStr(""),
        description="Console reviewers with tokens of their own: comma-separated NAME:TOKEN pairs; "
        "each signs in as console:NAME.",
    )
    console_chat_open: bool = Field(
        False, description="Open the console's chat to everyone who reaches PORT, not only this machine."
    )
    scheduler_port: int = Field(
        3100, ge=0, le=65535, description="The scheduler's HTTP port (/healthz, /metrics); 0 turns it off."
    )
    retrain_cron: str = Field("0 3 * * *", description="Crontab expression for scheduled retrains.")

    reviewers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated user ids who review corrections; empty means ADMIN_USERS.",
    )
    review_channel: str = Field("", description="Slack channel id where corrections are posted for review.")
    approvals_required: int = Field(1, ge=1, description="Reviewer approvals a correction needs.")
    teacher_url: str = Field(
        "",
        description="An OpenAI-compatible endpoint whose model drafts answers for the review queue's "
        "sampled cases (in the scheduler, never while answering); empty: the largest prepared catalog "
        "model when it is larger than the served one, else no drafts.",
    )
    teacher_model: str = Field("", description="The model name to ask at TEACHER_URL.")
    teacher_api_key: SecretStr = Field(SecretStr(""), description="A bearer token TEACHER_URL wants, if any.")
    review_drafts_per_run: int = Field(
        10, ge=0, description="Drafts the teacher writes per hourly run, at most."
    )
    review_daily_budget: int = Field(
        10,
        ge=0,
        description="Answers nobody voted on that the scheduler queues for review each day, the least "
        "certain first (answers voted down come first); 0 queues none.",
    )
    correction_recall: bool = Field(
        True, description="Index approved corrections at once, so the next answer uses them."
    )
    reviewed_answer_similarity: float = Field(
        0.82,
        ge=0,
        le=1,
        description="How close (cosine) a question must be to an approved correction's question to be "
        "answered with the reviewed answer itself, no model; 0 turns reviewed answers off.",
    )
    grounding_threshold: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Before answering, the model is asked whether its passages answer the question; "
        "where its share of 'yes' plus the closest passage's similarity to the question is below "
        "this, the bot says it could not find it. 0 asks nothing (default: the base model's).",
    )
    admin_channel: str = Field("", description="Slack channel id where retrain results are posted.")
    pii_scrubber: Literal["presidio", "regex"] = Field(
        "presidio",
        description="What takes personal data out of training data, exports and indexed corrections: "
        "presidio (names, addresses, ID numbers and our patterns) or regex (patterns alone).",
    )
    canary_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="A candidate that passes the gate first answers this share of conversation threads "
        "until the 👍/👎 decide; 0 promotes it at once.",
    )
    canary_min_votes: int = Field(50, ge=1, description="Votes on each side before a canary's first look.")
    canary_max_votes: int = Field(
        500, ge=1, description="The candidate's votes at a canary's last look; then admins decide."
    )
    canary_margin: float = Field(
        0.08,
        gt=0,
        lt=1,
        description="A canary is promoted when its 👍 rate is, with confidence, at most this far "
        "below live's.",
    )
    canary_window_hours: float = Field(
        168, gt=0, description="Hours a canary collects votes before admins are asked to decide."
    )
    retrain_min_examples: int = Field(
        20, ge=1, description="New feedback examples a scheduled retrain waits for."
    )
    # Unset: the base model's own (catalog.json "retrain", measured per model: docs/decisions.md).
    retrain_epochs: float | None = Field(
        None,
        gt=0,
        description="Passes over the training data in a retrain, at most (default: the base model's).",
    )
    retrain_max_steps: int = Field(
        -1, ge=-1, description="Stop a retrain's training after this many steps; -1 means all epochs."
    )
    retrain_learning_rate: float | None = Field(
        None, gt=0, description="Peak learning rate of a retrain's LoRA (default: the base model's)."
    )
    # 44: 20 corrections with their grounded twins and 4 samples (docs/decisions.md, "44 training examples")
    retrain_max_examples: int = Field(
        44,
        ge=0,
        description="Training examples per retrain: corrections (each with its grounded twin) and liked "
        "answers first, the sample question set fills the rest; 0 means all.",
    )
    retrain_train_minutes: float | None = Field(
        None,
        ge=0,
        description="Training stops after the last step that fits in this time; 0 means no limit "
        "(default: the base model's).",
    )
    retrain_gradient_checkpointing: bool | None = Field(
        None,
        description="Recompute activations in training's backward pass: slower, far less memory "
        "(default: the base model's).",
    )
    adapter_name: str = Field("kb", description="Prefix of adapter versions (`kb-v1`, `kb-v2`, ...).")
    keep_loaded_adapters: int = Field(
        2, ge=1, description="Adapter versions kept loaded in the model server (active and previous)."
    )
    gate_margin: float = Field(
        0.02,
        ge=0,
        description="How far (absolute) a candidate may fall below the live adapter on validation "
        "token-F1, key-fact rate and liked answers' token-F1.",
    )
    # 20%: twice the largest rise of a candidate whose answers got far better (docs/decisions.md)
    gate_loss_margin: float = Field(
        0.20,
        ge=0,
        description="How far (relative) a candidate's validation loss may rise above the live one's.",
    )

    @field_validator("admin_users", "opt_out_users", "reviewers", "model_server_replicas", mode="before")
    @classmethod
    def _admin_users(cls, value: object) -> object:
        return _split_list(value)

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Settings:
        if self.environment == "development":
            return self
        for name in SECRET_FIELDS:
            value = getattr(self, name).get_secret_value()
            if value and _PLACEHOLDER.search(value):
                raise SettingsError(
                    f"{name.upper()} is still a placeholder ({value!r}); set the real value "
                    "or unset it, or use ENVIRONMENT=development."
                )
        return self

    @model_validator(mode="after")
    def _console_users_usable(self) -> Settings:
        logins = self.console_logins()
        admin_token = self.admin_token.get_secret_value()
        if admin_token and "admin" in logins:
            raise SettingsError(
                "CONSOLE_USERS names someone `admin`, which is ADMIN_TOKEN's identity; pick another name."
            )
        tokens = list(logins.values()) + ([admin_token] if admin_token else [])
        if len(set(tokens)) != len(tokens):
            raise SettingsError("CONSOLE_USERS gives two people (or ADMIN_TOKEN) the same token; one each.")
        if self.environment != "development":
            for name, token in logins.items():
                if _PLACEHOLDER.search(token):
                    raise SettingsError(
                        f"CONSOLE_USERS: {name}'s token is still a placeholder; set a real one."
                    )
        return self

    def console_logins(self) -> dict[str, str]:
        """CONSOLE_USERS as {name: token}; refused when a pair is not NAME:TOKEN, a name is not 1-32
        letters, digits, dots, dashes or underscores, or a token is shorter than 16 characters."""
        logins: dict[str, str] = {}
        for pair in self.console_users.get_secret_value().split(","):
            if not pair.strip():
                continue
            name, _, token = (part.strip() for part in pair.partition(":"))
            if not _CONSOLE_NAME.fullmatch(name) or not token:
                raise SettingsError(
                    "CONSOLE_USERS takes comma-separated NAME:TOKEN pairs, each name 1-32 letters, "
                    f"digits, dots, dashes or underscores; {name[:32]!r} is not one."
                )
            if len(token) < MIN_CONSOLE_TOKEN:
                raise SettingsError(
                    f"CONSOLE_USERS: {name}'s token is shorter than {MIN_CONSOLE_TOKEN} characters; make one "
                    'with `python -c "import secrets; print(secrets.token_urlsafe())"`.'
                )
            if name in logins:
                raise SettingsError(f"CONSOLE_USERS names {name} twice; one token per person.")
            logins[name] = token
        return logins

    @property
    def model_servers(self) -> list[str]:
        """The model server replicas the bot and scheduler use: MODEL_SERVER_REPLICAS or MODEL_SERVER_URL."""
        return [url.rstrip("/") for url in self.model_server_replicas] or [self.model_server_url]

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'chatbot.db').resolve()}"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return Settings()
