"""Errors of the knowledge base. Messages are written for the person running the bot.

KnowledgeError
├── UnreadableDocument   one file could not be read; ingestion reports it and goes on
├── EmbedderUnavailable  the embedding model could not be loaded
└── IndexUnusable        the index on disk cannot be used as it is
    └── EmbedderMismatch the index was built with another embedding model
"""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base class of everything this package raises on purpose."""


class UnreadableDocument(KnowledgeError):
    """A document could not be read or parsed; the message says why, without the path."""


class EmbedderUnavailable(KnowledgeError):
    """The embedding model is not installed or cannot be loaded."""


class IndexUnusable(KnowledgeError):
    """The index directory is damaged or from an incompatible version; ingesting again rebuilds it."""


class EmbedderMismatch(IndexUnusable):
    """Query vectors from one model cannot be compared with document vectors from another."""
