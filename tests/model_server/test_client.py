"""The model-server client against plain handler functions (httpx.MockTransport)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from model_server.client import AsyncModelClient, ChatResult, ModelClient
from model_server.errors import (
    AdapterRejected,
    BadRequest,
    ModelNotFound,
    ModelServerRefused,
    ModelServerUnavailable,
)

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "kb-v1",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "25 days."},
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": "25", "logprob": -0.1}, {"token": " days", "logprob": -0.3}]},
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
}


Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> ModelClient:
    return ModelClient("http://model", transport=httpx.MockTransport(handler), retries=2)


async def _streamed(handler: Handler, into: list[object] | None = None, **options: Any) -> list[object]:
    """Everything `AsyncModelClient.chat_stream` yields, appended to `into` as it comes."""
    client = AsyncModelClient("http://model", transport=httpx.MockTransport(handler), retries=2)
    items: list[object] = [] if into is None else into
    try:
        async for item in client.chat_stream([{"role": "user", "content": "Leave?"}], **options):
            items.append(item)
    finally:
        await client.aclose()
    return items


def test_chat_sends_the_openai_payload_and_parses_the_answer() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=COMPLETION)

    result = _client(handler).chat([{"role": "user", "content": "Leave?"}], model="kb-v1", max_tokens=32)
    assert seen[0]["model"] == "kb-v1" and seen[0]["logprobs"] is True and seen[0]["max_tokens"] == 32
    assert (result.text, result.finish_reason, result.completion_tokens) == ("25 days.", "stop", 2)
    assert result.token_logprobs == [-0.1, -0.3]
    assert result.confidence == pytest.approx(math.exp(-0.2))


async def test_stream_yields_deltas_until_done() -> None:
    chunks = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "25"}}]},
        {"choices": [{"delta": {"content": " days"}, "finish_reason": "stop"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    *deltas, result = await _streamed(handler, model="base", logprobs=False)
    assert deltas == ["25", " days"] and isinstance(result, ChatResult)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            404,
            {"error": {"message": "The model `kb-v9` does not exist.", "type": "NotFoundError"}},
            ModelNotFound,
        ),
        (
            404,
            {"object": "error", "message": "The model `kb-v9` does not exist.", "code": 404},
            ModelNotFound,
        ),
        (400, {"error": {"message": "messages: Field required", "type": "BadRequestError"}}, BadRequest),
    ],
)
def test_errors_keep_the_servers_message(status: int, body: dict, error: type) -> None:
    client = _client(lambda request: httpx.Response(status, json=body))
    with pytest.raises(error) as raised:
        client.chat([{"role": "user", "content": "hi"}], model="kb-v9")
    assert "kb-v9" in str(raised.value) or "messages" in str(raised.value)


@pytest.mark.parametrize("status", [400, 404, 500])
def test_a_refused_adapter_says_why(status: int) -> None:
    # vLLM 0.32's own words for an over-rank adapter, which it answers with a 500
    message = (
        "Call to add_lora method failed: Worker failed with error "
        "'LoRA rank 32 is greater than max_lora_rank 16.'"
    )
    body = {"error": {"message": message, "type": "InternalServerError", "param": None, "code": status}}
    client = _client(lambda request: httpx.Response(status, json=body))
    with pytest.raises(AdapterRejected, match="rank 32 is greater than max_lora_rank 16"):
        client.load_adapter("kb-v2", "/adapters/kb-v2")


def test_connection_errors_are_retried_then_explained() -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    client = _client(handler)
    with pytest.raises(ModelServerUnavailable, match="chatbot model-server"):
        client.models()
    assert len(attempts) == 3
    assert client.health() is False


def test_a_transient_connection_error_is_survived() -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"object": "list", "data": [{"id": "base"}, {"id": "kb-v1"}]})

    assert _client(handler).models() == ["base", "kb-v1"]


async def test_async_client_matches_the_sync_one() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            return httpx.Response(200, json=COMPLETION)
        return httpx.Response(404, json={"error": {"message": "no such adapter", "type": "NotFoundError"}})

    client = AsyncModelClient("http://model", transport=httpx.MockTransport(handler))
    result = await client.chat([{"role": "user", "content": "Leave?"}], model="kb-v1")
    assert result.text == "25 days."
    with pytest.raises(AdapterRejected, match="no such adapter"):
        await client.unload_adapter("kb-v9")
    await client.aclose()


def test_a_server_that_is_not_there_at_all() -> None:
    client = ModelClient("http://127.0.0.1:9", retries=0, timeout=2)
    with pytest.raises(ModelServerUnavailable, match=r"127\.0\.0\.1:9"):
        client.chat([{"role": "user", "content": "hi"}], model="base")


def _sse(*events: object) -> str:
    return "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)


STREAMED = _sse(
    {"model": "kb-v1", "choices": [{"delta": {"role": "assistant", "content": ""}, "logprobs": None}]},
    {
        "model": "kb-v1",
        "choices": [{"delta": {"content": "25"}, "logprobs": {"content": [{"logprob": -0.1}]}}],
    },
    # a chunk may carry several tokens' logprobs (text held back, then released at once)
    {
        "model": "kb-v1",
        "choices": [
            {
                "delta": {"content": " days."},
                "logprobs": {"content": [{"logprob": -0.3}, {"logprob": -0.2}]},
                "finish_reason": "stop",
            }
        ],
    },
    {"model": "kb-v1", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}},
    "[DONE]",
)


async def test_chat_stream_yields_deltas_then_the_whole_result_with_logprobs_and_usage() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, text=STREAMED, headers={"content-type": "text/event-stream"})

    items = await _streamed(handler, model="kb-v1")
    assert seen[0]["stream"] is True and seen[0]["logprobs"] is True
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert items[:2] == ["25", " days."]
    result = items[2]
    assert isinstance(result, ChatResult) and len(items) == 3
    assert (result.text, result.model, result.finish_reason) == ("25 days.", "kb-v1", "stop")
    assert result.token_logprobs == [-0.1, -0.3, -0.2]
    assert (result.prompt_tokens, result.completion_tokens) == (12, 3)
    assert result.confidence == pytest.approx(math.exp(-0.2))


async def test_async_chat_stream_gives_the_same() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=STREAMED, headers={"content-type": "text/event-stream"})

    client = AsyncModelClient("http://model", transport=httpx.MockTransport(handler))
    items = [item async for item in client.chat_stream([{"role": "user", "content": "Hi"}], model="kb-v1")]
    await client.aclose()
    assert items[:2] == ["25", " days."] and isinstance(items[2], ChatResult)
    assert items[2].token_logprobs == [-0.1, -0.3, -0.2] and items[2].completion_tokens == 3


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        # vLLM reports a failure after the 200 status line as an error event
        (
            _sse({"choices": [{"delta": {"content": "25"}}]}, {"error": {"message": "engine died"}}),
            ModelServerRefused,
            "engine died",
        ),
        # the connection closed before [DONE]: the answer may be cut short
        (_sse({"choices": [{"delta": {"content": "25"}}]}), ModelServerUnavailable, "ended early"),
        (
            _sse({"choices": [{"delta": {"content": "25"}}]}) + "data: {not json\n\n",
            ModelServerRefused,
            "malformed",
        ),
    ],
)
async def test_a_broken_stream_is_an_error_not_a_short_answer(body: str, error: type, words: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    items: list[object] = []
    with pytest.raises(error, match=words):
        await _streamed(handler, items, model="base")
    assert items == ["25"]


async def test_a_refused_stream_keeps_the_servers_message() -> None:
    body = {"error": {"message": "The model `kb-v9` does not exist.", "type": "NotFoundError"}}
    with pytest.raises(ModelNotFound, match="kb-v9"):
        await _streamed(lambda request: httpx.Response(404, json=body), model="kb-v9")


def test_the_sync_client_serves_several_threads_at_once() -> None:
    """The gate asks from a thread pool: every thread gets its own answer, none waits for another's."""
    from concurrent.futures import ThreadPoolExecutor

    def handler(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["messages"][0]["content"]
        choice = {"index": 0, "message": {"role": "assistant", "content": asked}, "finish_reason": "stop"}
        return httpx.Response(200, json={"model": "base", "choices": [choice]})

    client = _client(handler)
    questions = [f"question {i}" for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda q: client.chat([{"role": "user", "content": q}], model="base").text, questions)
        )
    client.close()
    assert answers == questions
