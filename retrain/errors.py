"""Errors the retrain job raises. Messages are written for the admin who reads the run's record.

RetrainError
├── TrainingFailed      training stopped without a usable adapter (no examples, NaN loss, rank)
├── RegistryError       the adapter folder cannot be written as a new, servable version
│   ├── VersionExists   the folder is there already; versions are never overwritten
│   └── Unservable      the adapter is something vLLM refuses (rank, modules_to_save, DoRA)
└── PromotionFailed     the model server would not serve the adapter; SQL was not changed

`failure_reason` words any exception a run ends with as one line for its record and the admin channel.
"""

from __future__ import annotations

import errno

from feedback.errors import FeedbackError
from model_server.errors import ModelServerError


class RetrainError(Exception):
    pass


class TrainingFailed(RetrainError):
    """Training stopped without a usable adapter; the message says why."""


class RegistryError(RetrainError):
    pass


class VersionExists(RegistryError):
    pass


class Unservable(RegistryError):
    pass


class PromotionFailed(RetrainError):
    pass


def failure_reason(exc: BaseException, *, log: str = "the log") -> str:
    """One line an admin can act on; the traceback stays in `log` (which the reader is told)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"The disk is full{where}; free some space and queue the run again."
    if isinstance(exc, RetrainError | ModelServerError | FeedbackError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"A file operation failed: {exc}"
    return f"Unexpected error ({type(exc).__name__}); {log} has the traceback."
