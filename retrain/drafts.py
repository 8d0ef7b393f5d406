"""Teacher drafts for the review queue: a stronger model answers each sampled case's question from
the same passages (the prompt the bot was served, stored with its answer), so that reviewers confirm
or edit instead of writing from scratch. It runs in the scheduler's process, never on the path that
answers employees, and each run is bounded in count and in time. A teacher that is down, slow or
says nothing costs the case one attempt; it is tried again next run, up to MAX_ATTEMPTS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from feedback import queries, store
from feedback.db import Database
from feedback.errors import UnknownCorrection
from model_server import catalog, launch
from model_server.client import ModelClient
from model_server.errors import ModelServerError
from model_server.prepare import model_dir_for, prepared_models, resolve_name
from retrain.metrics import token_f1

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
DRAFT_LIMIT = 3000  # characters: what Slack's edit box holds, so a reviewer can edit the whole draft
# Below this token-F1 between the draft and the bot's answer, the case is marked "teacher disagrees".
DISAGREE_F1 = 0.5

Message = dict[str, str]


class Teacher:
    """Any OpenAI-compatible endpoint and model name."""

    def __init__(self, client: ModelClient, model: str, *, max_tokens: int = 300) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def draft(self, prompt: Sequence[Message]) -> str:
        return self.client.chat(list(prompt), model=self.model, max_tokens=self.max_tokens).text.strip()


def cut(text: str, limit: int = DRAFT_LIMIT) -> str:
    """`text` within `limit` characters, cut at a word, marked with an ellipsis where cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip() + "…"


def draft_pending(
    database: Database,
    teacher: Teacher,
    *,
    max_cases: int = 10,
    seconds: float = 600,
    clock: Callable[[], float] = time.monotonic,
) -> list[int]:
    """Draft the least certain sampled cases that have none yet; the case ids drafted."""
    deadline = clock() + seconds
    with database.reader() as session:
        pending = queries.undrafted_cases(session, max_attempts=MAX_ATTEMPTS, limit=max_cases)
    drafted: list[int] = []
    for case_id, prompt, answer in pending:
        if clock() >= deadline:
            log.info("drafting stopped for time; %d cases wait for the next run", len(pending) - len(drafted))
            break
        try:
            text = cut(teacher.draft(prompt)) if prompt else ""
        except ModelServerError as exc:
            log.warning("the teacher could not draft case #%s: %s", case_id, exc)
            text = ""
        disagrees = bool(text) and token_f1(text, answer) < DISAGREE_F1
        try:
            with database.writer() as session:
                store.attach_draft(
                    session,
                    correction_id=case_id,
                    draft=text or None,
                    model=teacher.model,
                    disagrees=disagrees,
                )
        except UnknownCorrection:  # deleted while the teacher wrote (a privacy request)
            log.info("case #%s was deleted while it was drafted; its draft is dropped", case_id)
            continue
        if text:
            drafted.append(case_id)
    return drafted


def default_teacher(data_dir: Path, base_model: str) -> Path | None:
    """The largest prepared catalog model, where it is larger than the one served; None otherwise
    (a base model outside the catalog has no size to compare: set TEACHER_URL)."""
    entries = catalog.load_catalog()
    served = entries.get(resolve_name(base_model))
    prepared = [entries[name] for name, ready in prepared_models(data_dir).items() if ready]
    largest = max(prepared, key=lambda e: e.parameters, default=None)
    if served is None or largest is None or largest.parameters <= served.parameters:
        return None
    return model_dir_for(data_dir, largest.name)


@contextlib.contextmanager
def local_teacher(model_dir: Path, *, vllm_python: Path | None, log_path: Path) -> Iterator[Teacher]:
    """The teacher on a model server of its own for one drafting run (vLLM where installed, else
    the embedded engine), stopped afterwards so its memory is back before the next retrain."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = launch.ServerSpec(model_dir=model_dir, url=f"http://127.0.0.1:{port}")
    if vllm_python is not None:
        command, env = launch.vllm_command(vllm_python, spec), launch.vllm_environment(kv_cache_gib=1)
    else:
        command, env = launch.engine_command(spec), {}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            launch.wait_healthy(spec.url, process, timeout=600)
            with ModelClient(spec.url, timeout=900, retries=0) as client:
                yield Teacher(client, spec.served_model_name)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def waiting_for_drafts(database: Database) -> bool:
    with database.reader() as session:
        return bool(queries.undrafted_cases(session, max_attempts=MAX_ATTEMPTS, limit=1))
