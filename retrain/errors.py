"""Errors the retrain job raises. Messages are written for the admin who reads the run's record.

RetrainError
├── TrainingFailed      training stopped without a usable adapter (no examples, NaN loss, rank)
├── RegistryError       the adapter folder cannot be written as a new, servable version
│   ├── VersionExists   the folder is there already; versions are never overwritten
│   └── Unservable      the adapter is something vLLM refuses (rank, modules_to_save, DoRA)
└── PromotionFailed     the model server would not serve the adapter; SQL was not changed
"""

from __future__ import annotations


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
