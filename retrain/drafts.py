"""Teacher drafts for the review queue: a stronger model answers each sampled case's question from
the same passages (the prompt the bot was served, stored with its answer), so that reviewers confirm
or edit instead of writing from scratch. It runs in the scheduler's process, never on the path that
answers employees, and each run is bounded in count and in time. A teacher that is down, slow or
says nothing costs the case one attempt; it is tried again next run, up to MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from feedback import queries, store
from feedback.db import Database
from model_server.client import ModelClient
from model_server.errors import ModelServerError
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
        with database.writer() as session:
            if not text:
                store.attach_draft(session, correction_id=case_id, draft=None, model=teacher.model)
                continue
            disagrees = token_f1(text, answer) < DISAGREE_F1
            store.attach_draft(
                session, correction_id=case_id, draft=text, model=teacher.model, disagrees=disagrees
            )
        drafted.append(case_id)
    return drafted
