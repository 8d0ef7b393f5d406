"""One contract, two servers: the same tests against the embedded engine and real vLLM, through
the client that bot/ and retrain/ use. Servers are started the way `chatbot model-server` does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_server.client import AsyncModelClient, ChatResult, ModelClient
from model_server.errors import AdapterRejected, ModelNotFound, NotAuthorized
from tests.support.lora import make_lora
from tests.support.model_servers import NO_VLLM, running_server, vllm_python

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Tell me a fun fact about octopuses."}]
KEY = "contract-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="session")
def adapters(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": make_lora(base_model_dir, root / "a", seed=1),
        "b": make_lora(base_model_dir, root / "b", seed=2),
        "rank32": make_lora(base_model_dir, root / "rank32", rank=32),
        "lm_head": make_lora(base_model_dir, root / "lm_head", modules_to_save=["lm_head"]),
    }


@pytest.fixture(
    scope="module",
    params=["engine", pytest.param("vllm", marks=pytest.mark.vllm)],
)
def server(
    request: pytest.FixtureRequest, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "vllm" and vllm_python() is None:
        pytest.skip(NO_VLLM)
    log = tmp_path_factory.mktemp("logs") / f"{request.param}.log"
    # with an API key, as MODEL_SERVER_API_KEY starts it: every test below sends it
    with running_server(request.param, base_model_dir, log, {"VLLM_API_KEY": KEY}, max_loras=3) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[ModelClient]:
    with ModelClient(server, timeout=300, api_key=KEY) as c:
        yield c


def test_health_and_models(client: ModelClient) -> None:
    assert client.health()
    assert "base" in client.models()


def test_without_the_key_only_health_answers(
    server: str, client: ModelClient, adapters: dict[str, Path]
) -> None:
    for key in ("", "wrong"):
        with ModelClient(server, retries=0, api_key=key) as stranger:
            assert stranger.health()  # a load balancer's check needs no key
            with pytest.raises(NotAuthorized, match="MODEL_SERVER_API_KEY"):
                stranger.models()
            with pytest.raises(NotAuthorized):
                stranger.load_adapter("intruder", str(adapters["a"]))
            with pytest.raises(NotAuthorized):
                stranger.chat(QUESTION, model="base", max_tokens=2)
    assert "intruder" not in client.models()


def test_chat_with_logprobs_and_usage(client: ModelClient) -> None:
    result = client.chat(QUESTION, model="base", max_tokens=16)
    assert result.text.strip() and result.model == "base"
    assert result.finish_reason in ("stop", "length")
    assert 0 < result.completion_tokens <= 16 and result.prompt_tokens > 0
    assert len(result.token_logprobs) == result.completion_tokens
    assert all(lp <= 0 for lp in result.token_logprobs)
    assert result.confidence is not None and 0 < result.confidence <= 1


async def _streamed(server: str, **options: Any) -> list[str | ChatResult]:
    async_client = AsyncModelClient(server, timeout=300, api_key=KEY)
    try:
        return [item async for item in async_client.chat_stream(QUESTION, model="base", **options)]
    finally:
        await async_client.aclose()


def test_stream_gives_the_same_greedy_text(server: str, client: ModelClient) -> None:
    plain = client.chat(QUESTION, model="base", max_tokens=16, logprobs=False).text
    *deltas, _ = asyncio.run(_streamed(server, max_tokens=16, logprobs=False))
    assert "".join(str(d) for d in deltas) == plain


def test_stream_carries_the_logprobs_and_usage_of_the_whole_completion(
    server: str, client: ModelClient
) -> None:
    whole = client.chat(QUESTION, model="base", max_tokens=16)
    *deltas, result = asyncio.run(_streamed(server, max_tokens=16))
    assert len(deltas) >= 2 and all(isinstance(d, str) for d in deltas)
    assert isinstance(result, ChatResult)
    assert "".join(deltas) == result.text == whole.text
    assert (result.model, result.finish_reason) == ("base", whole.finish_reason)
    assert (result.prompt_tokens, result.completion_tokens) == (whole.prompt_tokens, whole.completion_tokens)
    assert len(result.token_logprobs) == result.completion_tokens  # one per token, streamed in its chunk
    assert result.token_logprobs == pytest.approx(whole.token_logprobs, abs=1e-2)
    assert result.confidence == pytest.approx(whole.confidence, abs=1e-2)


def test_unknown_model_is_404(client: ModelClient) -> None:
    with pytest.raises(ModelNotFound) as raised:
        client.chat(QUESTION, model="kb-v404", max_tokens=4)
    assert raised.value.status == 404 and "kb-v404" in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "base"},
        {"model": "base", "messages": "hello"},
        {"model": "base", "messages": [{"content": 3}]},
    ],
)
def test_malformed_requests_are_400_in_the_openai_shape(server: str, body: dict) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] and error["code"] == 400 and "type" in error


def test_not_json_is_400(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json", **AUTH},
    )
    assert response.status_code == 400


def test_adapter_lifecycle(client: ModelClient, adapters: dict[str, Path]) -> None:
    base = client.chat(QUESTION, model="base", max_tokens=12)
    client.load_adapter("kb-a1", str(adapters["a"]))
    try:
        assert "kb-a1" in client.models()
        tuned = client.chat(QUESTION, model="kb-a1", max_tokens=12)
        assert tuned.model == "kb-a1"
        assert tuned.text != base.text or tuned.token_logprobs != base.token_logprobs
        with pytest.raises(AdapterRejected) as again:
            client.load_adapter("kb-a1", str(adapters["b"]))  # a name is never reused for new weights
        assert again.value.status == 400
    finally:
        client.unload_adapter("kb-a1")
    assert "kb-a1" not in client.models()
    with pytest.raises(ModelNotFound):
        client.chat(QUESTION, model="kb-a1", max_tokens=4)


def test_missing_adapter_path_is_404(client: ModelClient, tmp_path: Path) -> None:
    with pytest.raises(AdapterRejected) as raised:
        client.load_adapter("kb-missing", str(tmp_path / "nowhere"))
    assert raised.value.status == 404
    assert "kb-missing" not in client.models()


@pytest.mark.parametrize(("kind", "why"), [("rank32", "rank"), ("lm_head", "modules_to_save")])
def test_unservable_adapters_are_refused_with_the_reason(
    client: ModelClient, adapters: dict[str, Path], kind: str, why: str
) -> None:
    with pytest.raises(AdapterRejected, match=why):
        client.load_adapter(f"kb-{kind}", str(adapters[kind]))
    assert f"kb-{kind}" not in client.models()
    assert client.health()  # a refused adapter leaves the server serving


def test_loading_under_load_fails_no_request(server: str, adapters: dict[str, Path]) -> None:
    async def scenario() -> list[str]:
        client = AsyncModelClient(server, timeout=300, api_key=KEY)
        await client.load_adapter("kb-a2", str(adapters["a"]))
        in_flight = [
            asyncio.create_task(client.chat(QUESTION, model=m, max_tokens=12)) for m in ("kb-a2", "base") * 2
        ]
        await asyncio.sleep(0.2)
        await client.load_adapter("kb-b2", str(adapters["b"]))  # the swap, while requests run
        after = await client.chat(QUESTION, model="kb-b2", max_tokens=8)
        results = await asyncio.gather(*in_flight)
        await client.unload_adapter("kb-a2")
        await client.unload_adapter("kb-b2")
        await client.aclose()
        return [r.model for r in results] + [after.model]

    assert asyncio.run(scenario()) == ["kb-a2", "base", "kb-a2", "base", "kb-b2"]
