"""Errors the model-server client raises. Messages are written for the person running the bot.

ModelServerError
├── ModelServerUnavailable   nothing answers at the URL (or it timed out)
└── ModelServerRefused       it answered with an error
    ├── BadRequest           400: the request was malformed
    ├── ModelNotFound        404: no such base model or adapter loaded
    └── AdapterRejected      the server will not load this adapter (rank, modules_to_save, path)

PrepareError                 the base model could not be prepared (catalog, parts, hash, memory, format)
"""

from __future__ import annotations


class ModelServerError(Exception):
    pass


class ModelServerUnavailable(ModelServerError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"The model server at {url} is not answering ({reason}). Start it with "
            "`chatbot model-server` (or `make run`), or point MODEL_SERVER_URL at a running one."
        )
        self.url = url


class ModelServerRefused(ModelServerError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadRequest(ModelServerRefused):
    pass


class NotAuthorized(ModelServerRefused):
    """The server wants an API key, and this one was missing or wrong."""


class ModelNotFound(ModelServerRefused):
    pass


class AdapterRejected(ModelServerRefused):
    pass


class PrepareError(RuntimeError):
    """The base model could not be prepared; the message says what to do."""
