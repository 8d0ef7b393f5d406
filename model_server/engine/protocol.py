"""Request bodies, parsed and refused the way vLLM's FastAPI layer does.

The models keep vLLM's field names and types (only the subset we serve), so a body that vLLM
accepts parses here and a body it refuses gets the same 400 with the same kind of message:
"N validation error(s):" followed by pydantic's error records, `loc` joined as "body.field".
Fields we do not serve (tools, response_format, ...) are accepted and ignored, as vLLM ignores
unknown fields.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from model_server.engine.errors import BadRequest, ValidationFailed

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_MAX_REPORTED_ERRORS = 10
_MAX_ERROR_INPUT_CHARS = 200
_MAX_ERROR_CHARS = 1000
# pydantic-core's wrapper names that vLLM drops from `loc` (bracketed ones are caught by the regex)
_INTERNAL_LOC = frozenset(
    (
        "function-wrap",
        "function-after",
        "function-before",
        "function-plain",
        "json-or-python",
        "lax-or-strict",
        "chain",
        "default",
        "nullable",
        "tagged-union",
        "union",
        "call",
        "arguments",
        "is-instance",
        "is-subclass",
        "callable",
        "str",
        "int",
        "float",
        "bool",
        "bytes",
        "bytearray",
        "list",
        "tuple",
        "dict",
        "set",
        "frozenset",
        "complex",
        "none",
        "nonetype",
    )
)


class ParameterError(ValueError):
    """A value refused by a request-level check; `parameter` becomes the error's `param`."""

    def __init__(self, message: str, *, parameter: str, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __str__(self) -> str:
        extras = [f"parameter={self.parameter}"]
        if self.value is not None:
            extras.append(f"value={self.value}")
        return f"{super().__str__()} ({', '.join(extras)})"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Lenient):
    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Lenient):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class ChatCompletionRequest(_Lenient):
    messages: list[ChatMessage]
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = False
    # null means omitted, as in the OpenAI spec
    top_logprobs: Annotated[int, BeforeValidator(lambda v: 0 if v is None else v)] = 0
    n: int | None = 1

    @model_validator(mode="before")
    @classmethod
    def _check_stream_options(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stream_options") and not data.get("stream"):
            raise ParameterError(
                "Stream options can only be defined when `stream=True`.", parameter="stream_options"
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def _check_logprobs(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        top = data.get("top_logprobs")
        if top is None:
            return data
        if not isinstance(top, int | float):
            raise ParameterError("`top_logprobs` must be an integer.", parameter="top_logprobs", value=top)
        if top < 0 and top != -1:
            raise ParameterError(
                "`top_logprobs` must be a positive value or -1.", parameter="top_logprobs", value=top
            )
        if (top == -1 or top > 0) and not data.get("logprobs"):
            raise ParameterError(
                "when using `top_logprobs`, `logprobs` must be set to true.", parameter="top_logprobs"
            )
        return data

    @property
    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class LoadLoRAAdapterRequest(_Lenient):
    lora_name: str
    lora_path: str
    load_inplace: bool = False


class UnloadLoRAAdapterRequest(_Lenient):
    lora_name: str
    lora_int_id: int | None = None


Body = TypeVar("Body", bound=BaseModel)


def parse_body(raw: bytes, content_type: str, model: type[Body]) -> Body:
    """Parse a JSON request body into `model`, or raise the 400 vLLM would answer."""
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise ValidationFailed(
            "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"
        )
    if not raw.strip():
        raise _failed([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        json_error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
        raise _failed([{**json_error, "input": {}, "ctx": {"error": exc.msg}}]) from None
    except ValueError:  # not UTF-8
        json_error = {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}
        raise _failed([{**json_error, "input": {}, "ctx": {"error": "Invalid UTF-8"}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        for error in exc.errors(include_url=False):
            problem = error.get("ctx", {}).get("error")
            if isinstance(problem, ParameterError):  # vLLM reports its own checks plainly, not as a list
                raise BadRequest(str(problem), param=problem.parameter) from None
        raise _failed(errors) from None


def _failed(errors: list[dict[str, Any]]) -> ValidationFailed:
    param = _clean_loc(tuple(errors[0]["loc"])) if errors else None
    label = "error" if len(errors) == 1 else "errors"
    message = f"{len(errors)} validation {label}:\n"
    message += "".join(f"  {_format_error(err)}\n" for err in errors[:_MAX_REPORTED_ERRORS])
    if len(errors) > _MAX_REPORTED_ERRORS:
        message += f"  ...and {len(errors) - _MAX_REPORTED_ERRORS} more {label}\n"
    return ValidationFailed(message.rstrip(), param=param)


def _format_error(error: dict[str, Any]) -> str:
    shown = dict(error)
    if "input" in shown:
        shown["input"] = _summarize(shown["input"])
    shown["loc"] = _clean_loc(tuple(shown["loc"]))
    text = str(shown)
    return text[:_MAX_ERROR_CHARS] + "...[truncated]" if len(text) > _MAX_ERROR_CHARS else text


def _summarize(value: object) -> object:
    # one malformed request must not echo its whole (possibly huge) input back per error
    if isinstance(value, str):
        return (
            value[:_MAX_ERROR_INPUT_CHARS] + "...[truncated]"
            if len(value) > _MAX_ERROR_INPUT_CHARS
            else value
        )
    if isinstance(value, bytes | bytearray):
        return f"<{type(value).__name__} of {len(value)} bytes>"
    if isinstance(value, list | tuple | set | frozenset | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    text = str(value)
    return text[:_MAX_ERROR_INPUT_CHARS] + "...[truncated]" if len(text) > _MAX_ERROR_INPUT_CHARS else text


def _clean_loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (re.search(r"[\[\]{}()]", str(p)) or str(p).lower() in _INTERNAL_LOC)]
    return ".".join(parts) if parts else ".".join(str(p) for p in loc)
