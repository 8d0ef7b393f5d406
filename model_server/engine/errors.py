"""Errors the engine answers with, in the JSON shape and status codes vLLM 0.32 uses.

Every error body is `{"error": {"message", "type", "param", "code"}}`; callers (ours and anyone's
OpenAI client) branch on the status and read the message, so both match what vLLM sends.

EngineError                      any error a client sees
├── BadRequest                   400 "BadRequestError": a value vLLM refuses after parsing
├── ValidationFailed             400 "Bad Request": the body does not parse (FastAPI's wording)
├── InvalidUserInput             400 "InvalidUserInput": a LoRA load/unload request vLLM refuses
├── NotFound                     404 "NotFoundError": unknown model, adapter or adapter path
└── ServerError                  500 "InternalServerError": adapter refused by the worker, or a crash
"""

from __future__ import annotations

import re
from typing import Any


class EngineError(Exception):
    status = 500
    err_type = "InternalServerError"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": sanitize_message(self.message),
                "type": self.err_type,
                "param": self.param,
                "code": self.status,
            }
        }


class BadRequest(EngineError):
    status = 400
    err_type = "BadRequestError"


class ValidationFailed(EngineError):
    status = 400
    err_type = "Bad Request"


class InvalidUserInput(EngineError):
    status = 400
    err_type = "InvalidUserInput"


class NotFound(EngineError):
    status = 404
    err_type = "NotFoundError"


class ServerError(EngineError):
    status = 500
    err_type = "InternalServerError"


def http_error(status: int, reason: str) -> EngineError:
    """Routing errors (unknown path, wrong method): vLLM names the type after the HTTP phrase."""
    error = EngineError(reason)
    error.status = status
    error.err_type = reason
    return error


def sanitize_message(message: str) -> str:
    """vLLM strips addresses, tracebacks and file paths from every error message; so do we, so that
    messages (and tests written against vLLM) read the same from either server."""
    message = re.sub(r" at 0x[0-9a-fA-F]+>", ">", message)
    message = re.sub(r'\n?\s*File "[^"]+", line \d+, in \S+(\n\s+.*)?', "", message)
    message = re.sub(r"/(?:home|usr|opt|var|tmp|root|lib|mnt|srv)(?:/[\w.\-]+)+", "<path>", message)
    message = re.sub(r"(?:/[\w\-]+)+/[\w\-]+\.\w+", "<path>", message)
    return message.strip()
