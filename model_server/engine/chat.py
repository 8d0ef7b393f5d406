"""From a parsed chat request to prompt tokens and sampling parameters, refused as vLLM refuses.

vLLM renders the chat template to text and tokenizes that without adding special tokens; doing
the same gives the same prompt (and prompt_tokens) for the same messages.
"""

from __future__ import annotations

import math
from typing import Any

from model_server.engine.errors import BadRequest
from model_server.engine.protocol import ChatCompletionRequest, ChatMessage
from model_server.engine.sampling import SamplingParams

MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
_GREEDY_BELOW = 1e-5  # vLLM samples greedily below this temperature


def _refuse(message: str, parameter: str, value: Any = None) -> BadRequest:
    # vLLM's validation errors print their parameter (and value) after the message
    extras = f"parameter={parameter}" + ("" if value is None else f", value={value}")
    return BadRequest(f"{message} ({extras})", param=parameter)


def render_prompt(tokenizer: Any, messages: list[ChatMessage]) -> list[int]:
    conversation = [m.model_dump(exclude_none=True) | {"content": _text_content(m)} for m in messages]
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja's TemplateError and friends: the messages do not fit the template
        raise BadRequest(f"The chat template could not render these messages: {exc}") from None
    return list(tokenizer.encode(text, add_special_tokens=False))


def _text_content(message: ChatMessage) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if part.get("type") != "text":
            raise BadRequest(f"This model reads text only; got a {part.get('type')!r} content part.")
        texts.append(str(part.get("text", "")))
    return "\n".join(texts)


def sampling_params(req: ChatCompletionRequest, prompt_tokens: int, max_model_len: int) -> SamplingParams:
    if req.n not in (None, 1):
        raise _refuse("The embedded engine generates one choice per request; use n=1.", "n", req.n)
    if prompt_tokens >= max_model_len:  # no room for even one output token
        raise _refuse(
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
            f"contains {prompt_tokens} input tokens, which exceeds this limit even without any output "
            "tokens. Please reduce the length of the input prompt.",
            "input_tokens",
            prompt_tokens,
        )
    requested = req.max_completion_tokens or req.max_tokens
    if requested is not None and requested > max_model_len:
        raise _refuse(
            f"max_tokens={requested} cannot be greater than max_model_len={max_model_len}. "
            "Please request fewer output tokens.",
            "max_tokens",
            requested,
        )
    if requested is not None and requested < 1:
        raise _refuse(f"max_tokens must be at least 1, got {requested}.", "max_tokens", requested)
    temperature = 1.0 if req.temperature is None else req.temperature
    if not math.isfinite(temperature):
        raise _refuse(f"temperature must be a finite number, got {temperature}.", "temperature", temperature)
    if temperature < 0.0:
        raise _refuse(f"temperature must be non-negative, got {temperature}.", "temperature", temperature)
    if temperature > 2.0:
        raise _refuse(f"temperature must be in [0, 2], got {temperature}.", "temperature", temperature)
    top_p = 1.0 if req.top_p is None else req.top_p
    if not 0.0 < top_p <= 1.0:
        raise _refuse(f"top_p must be in (0, 1], got {top_p}.", "top_p", top_p)
    top_logprobs = req.top_logprobs if req.logprobs else 0
    if top_logprobs == -1 or top_logprobs > MAX_LOGPROBS:
        wanted = "all" if top_logprobs == -1 else top_logprobs
        raise _refuse(
            f"Requested sample logprobs of {wanted}, which is greater than max allowed: {MAX_LOGPROBS}",
            "logprobs",
            wanted,
        )
    room = max_model_len - prompt_tokens
    return SamplingParams(
        max_tokens=room if requested is None else min(requested, room),
        temperature=0.0 if temperature < _GREEDY_BELOW else temperature,
        top_p=top_p,
        seed=req.seed,
        stop=tuple(s for s in req.stop_strings if s),
        stop_token_ids=frozenset(req.stop_token_ids or ()),
        ignore_eos=req.ignore_eos,
        logprobs=bool(req.logprobs),
        top_logprobs=top_logprobs,
    )
