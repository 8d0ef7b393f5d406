"""HTTP routes: the subset of vLLM's OpenAI-compatible API that the bot and the retrain job use.

    GET  /health                   200, empty body
    GET  /v1/models                the base model and loaded adapters (parent = base, root = path)
    POST /v1/chat/completions      plain JSON, or Server-Sent Events with "stream": true
    POST /v1/load_lora_adapter     {"lora_name", "lora_path"[, "load_inplace"]}
    POST /v1/unload_lora_adapter   {"lora_name"}

Routes stay thin: parse, ask the engine, shape the answer. Errors anywhere become vLLM's JSON body
and status in one middleware.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from aiohttp import web

from model_server.engine import responses
from model_server.engine.core import Engine, Job
from model_server.engine.errors import EngineError, ServerError, http_error
from model_server.engine.protocol import (
    ChatCompletionRequest,
    LoadLoRAAdapterRequest,
    UnloadLoRAAdapterRequest,
    parse_body,
)
from model_server.engine.responses import TokenLogprob

log = logging.getLogger(__name__)
ENGINE = web.AppKey("engine", Engine)


def create_app(engine: Engine, *, api_key: str = "") -> web.Application:
    """The HTTP application over `engine`; closing the engine stays with whoever created it. With
    `api_key`, every /v1 route wants it as a bearer token, as vLLM's `--api-key` does."""
    middlewares = [_errors] if not api_key else [_needs_key(api_key), _errors]
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024**2)
    app[ENGINE] = engine
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/load_lora_adapter", load_lora_adapter)
    app.router.add_post("/v1/unload_lora_adapter", unload_lora_adapter)
    return app


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    # compact, non-ASCII kept: what vLLM's JSONResponse sends
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=text, status=status, content_type="application/json")


def _needs_key(api_key: str) -> Any:
    expected = f"Bearer {api_key}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if request.path.startswith("/v1") and not hmac.compare_digest(given, expected):
            return _json({"error": "Unauthorized"}, 401)  # vLLM's answer, word for word
        response: web.StreamResponse = await handler(request)
        return response

    return check


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except EngineError as exc:
        log.info("%s %s -> %d %s: %s", request.method, request.path, exc.status, exc.err_type, exc.message)
        return _json(exc.body(), exc.status)
    except web.HTTPException as exc:  # unknown path, wrong method
        if exc.status < 400:
            raise
        return _json(http_error(exc.status, exc.reason).body(), exc.status)
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        error = ServerError(str(exc) or type(exc).__name__)
        return _json(error.body(), error.status)


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def list_models(request: web.Request) -> web.Response:
    return _json({"object": "list", "data": request.app[ENGINE].models()})


async def load_lora_adapter(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), request.headers.get("Content-Type", ""), LoadLoRAAdapterRequest)
    return web.Response(text=await request.app[ENGINE].load_adapter(body))


async def unload_lora_adapter(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), request.headers.get("Content-Type", ""), UnloadLoRAAdapterRequest)
    return web.Response(text=await request.app[ENGINE].unload_adapter(body))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = parse_body(await request.read(), request.headers.get("Content-Type", ""), ChatCompletionRequest)
    started = time.monotonic()
    job = request.app[ENGINE].start(body)
    try:
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _stream(request, job, include_usage, started)
        return await _complete(request, job, started)
    finally:
        job.cancel()  # a no-op when it finished; stops generating for a client that went away


async def _complete(request: web.Request, job: Job, started: float) -> web.Response:
    texts: list[str] = []
    logprobs: list[TokenLogprob] = []
    finish, reason, tokens = "stop", None, 0
    async for event in job.events():
        if request.transport is None or request.transport.is_closing():
            # the client gave up: free its batch row now rather than generate an answer nobody reads
            log.info("client went away from %s after %d tokens", job.id, tokens)
            return web.Response(status=499)  # nginx's "client closed request"; nobody receives it
        tokens += 1
        texts.append(event.text)
        if event.logprob is not None:
            logprobs.append(event.logprob)
        finish, reason = event.finish_reason or finish, event.stop_reason
    _log_request(job, tokens, finish, started, stream=False)
    completion = responses.Completion(
        id=job.id,
        created=job.created,
        model=job.model,
        text="".join(texts),
        finish_reason=finish,
        stop_reason=reason,
        logprobs=logprobs if job.params.logprobs else None,
        prompt_tokens=job.prompt_tokens,
        completion_tokens=tokens,
    )
    return _json(responses.completion_json(completion))


async def _stream(request: web.Request, job: Job, include_usage: bool, started: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)

    async def send(data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        await response.write(f"data: {text}\n\n".encode())

    tokens, finish = 0, None
    try:
        await send(responses.role_chunk(job.id, job.created, job.model))
        async for event in job.events():
            tokens += 1
            finish = event.finish_reason
            ending = None if finish is None else (finish, event.stop_reason)
            logprobs = [event.logprob] if event.logprob is not None else None
            chunk = responses.delta_chunk(
                job.id, job.created, job.model, event.text, logprobs, ending, fingerprint=not include_usage
            )
            await send(chunk)
        if include_usage:
            await send(responses.usage_chunk(job.id, job.created, job.model, job.prompt_tokens, tokens))
    except EngineError as exc:  # the status line is gone already; vLLM sends the error as an event
        await send(exc.body())
    except ConnectionError:
        log.info("client went away from %s after %d tokens", job.id, tokens)
        return response
    await send("[DONE]")
    await response.write_eof()
    _log_request(job, tokens, finish, started, stream=True)
    return response


def _log_request(job: Job, tokens: int, finish: str | None, started: float, *, stream: bool) -> None:
    log.info(
        "chat model=%s prompt_tokens=%d completion_tokens=%d finish=%s stream=%s %.0f ms",
        job.model,
        job.prompt_tokens,
        tokens,
        finish,
        stream,
        (time.monotonic() - started) * 1000,
    )
