"""The embedded engine over real HTTP, on the real SmolLM2-135M and real peft adapters.

One engine serves the whole module (loading it is the slow part); each test loads adapters under its
own names, as the retrain job does, so tests do not depend on each other's adapters. Expected error
bodies are the ones measured on vLLM 0.32.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from aiohttp import web

from model_server.client import AsyncModelClient
from model_server.engine import Engine, EngineConfig, create_app
from model_server.errors import NotAuthorized
from tests.support.lora import make_foreign_lora, make_ia3, make_lora

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Tell me one fun fact about octopuses."}]


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Run `app` on a free port in its own thread and event loop; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="engine-http", daemon=True)
    thread.start()
    assert ready.wait(60), "the engine's HTTP server did not start"
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)


@pytest.fixture(scope="module")
def adapters(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": make_lora(base_model_dir, root / "a", seed=0),
        "b": make_lora(base_model_dir, root / "b", seed=1),
        "rank32": make_lora(base_model_dir, root / "rank32", rank=32),
        "modules_to_save": make_lora(base_model_dir, root / "saved", modules_to_save=["lm_head"]),
        "dora": make_lora(base_model_dir, root / "dora", use_dora=True),
        "ia3": make_ia3(base_model_dir, root / "ia3"),
        "foreign": make_foreign_lora(base_model_dir, root / "foreign"),
        "missing": root / "never-written",
    }


@pytest.fixture(scope="module")
def engine(base_model_dir: Path) -> Iterator[Engine]:
    config = EngineConfig(
        model=str(base_model_dir),
        served_model_names=("base",),
        max_loras=3,
        max_lora_rank=16,
        max_cpu_loras=4,
    )
    engine = Engine.load(config)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[str]:
    with serve(create_app(engine)) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=600) as client:
        yield client


def payload(model: str = "base", max_tokens: int = 16, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": QUESTION, "max_tokens": max_tokens, "temperature": 0, **extra}


async def chat(
    client: httpx.AsyncClient, model: str = "base", max_tokens: int = 16, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/v1/chat/completions", json=payload(model, max_tokens, **extra))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def text(body: dict[str, Any]) -> str:
    return str(body["choices"][0]["message"]["content"])


_answers: dict[str, str] = {}


async def answer(client: httpx.AsyncClient, model: str = "base") -> str:
    """The greedy 24-token answer, asked once per model name (the base's is shared between tests)."""
    if model not in _answers:
        _answers[model] = text(await chat(client, model, 24))
    return _answers[model]


async def stream(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    """The decoded `data:` events of a streamed completion, "[DONE]" included."""
    events: list[Any] = []
    async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def load(client: httpx.AsyncClient, name: str, path: Path | str) -> httpx.Response:
    return await client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})


async def unload(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post("/v1/unload_lora_adapter", json={"lora_name": name})


async def test_health_and_models(client: httpx.AsyncClient, base_model_dir: Path) -> None:
    assert (await client.get("/health")).status_code == 200
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    base = models["data"][0]
    assert (base["id"], base["object"], base["parent"], base["root"]) == (
        "base",
        "model",
        None,
        str(base_model_dir),
    )
    assert base["max_model_len"] == 8192


async def test_plain_and_streamed_give_the_same_greedy_text(client: httpx.AsyncClient) -> None:
    plain = await chat(client, max_tokens=16)
    events = await stream(client, payload(max_tokens=16, stream_options={"include_usage": True}))

    assert events[-1] == "[DONE]"
    first, *deltas, usage_chunk, _ = events
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(chunk["id"] == first["id"] for chunk in deltas)
    assert [c["choices"][0]["finish_reason"] for c in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert "".join(c["choices"][0]["delta"]["content"] for c in deltas) == text(plain)
    assert usage_chunk["choices"] == []
    plain_usage = {k: plain["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert usage_chunk["usage"] == plain_usage
    assert text(plain)


async def test_logprobs_and_usage(client: httpx.AsyncClient, engine: Engine) -> None:
    body = await chat(client, max_tokens=8, logprobs=True, top_logprobs=3)

    choice = body["choices"][0]
    entries = choice["logprobs"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"] == 8
    assert choice["finish_reason"] == "length"
    for entry in entries:
        assert entry["logprob"] <= 0.0
        assert entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == 3
        top = [t["logprob"] for t in entry["top_logprobs"]]
        assert top == sorted(top, reverse=True) and all(lp <= 0.0 for lp in top)
        # greedy: the chosen token is the most likely one, scored from the same forward pass
        assert entry["top_logprobs"][0]["token"] == entry["token"]
        assert entry["top_logprobs"][0]["logprob"] == entry["logprob"]
    assert "".join(e["token"] for e in entries) == text(body)
    prompt = engine.tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    prompt_tokens = len(engine.tokenizer.encode(prompt, add_special_tokens=False))
    assert body["usage"]["prompt_tokens"] == prompt_tokens
    assert body["usage"]["total_tokens"] == prompt_tokens + 8


async def test_stop_string_ends_the_answer_before_it(client: httpx.AsyncClient) -> None:
    full = await answer(client)
    stop = full.split()[4]  # a word well inside the answer
    expected = full[: full.index(stop)]

    body = await chat(client, max_tokens=24, stop=[stop])
    events = await stream(client, payload(max_tokens=24, stop=[stop]))

    assert text(body) == expected
    assert (body["choices"][0]["finish_reason"], body["choices"][0]["stop_reason"]) == ("stop", stop)
    assert "".join(c["choices"][0]["delta"]["content"] for c in events[1:-1]) == expected
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_unknown_model_is_404_in_vllms_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=payload("nope"))
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model `nope` does not exist. Valid aliases: base.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


MALFORMED = [
    pytest.param({"model": "base"}, "body.messages", "'type': 'missing'", id="no-messages"),
    pytest.param({"messages": "oops"}, "body.messages", "'type': 'list_type'", id="messages-not-a-list"),
    pytest.param(
        {"messages": [{"content": "hi"}]}, "body.messages.0.role", "'type': 'missing'", id="no-role"
    ),
    pytest.param(
        {"messages": QUESTION, "max_tokens": "many"}, "body.max_tokens", "int_parsing", id="bad-type"
    ),
    pytest.param(["not", "an", "object"], "body", "'loc': 'body'", id="not-an-object"),
]


@pytest.mark.parametrize(("body", "param", "detail"), MALFORMED)
async def test_malformed_requests_are_400(
    client: httpx.AsyncClient, body: Any, param: str, detail: str
) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("Bad Request", param, 400)
    assert error["message"].startswith("1 validation error:\n  {")
    assert detail in error["message"]


async def test_invalid_json_and_values_are_400(client: httpx.AsyncClient) -> None:
    broken = await client.post(
        "/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"] == {
        "message": "1 validation error:\n  {'type': 'json_invalid', 'loc': 'body.1', "
        "'msg': 'JSON decode error', 'input': '<dict of 0 items>', "
        "'ctx': {'error': 'Expecting property name enclosed in double quotes'}}",
        "type": "Bad Request",
        "param": "body.1",
        "code": 400,
    }
    hot = await client.post("/v1/chat/completions", json=payload(temperature=5))
    assert hot.status_code == 400
    assert hot.json()["error"] == {
        "message": "temperature must be in [0, 2], got 5.0. (parameter=temperature, value=5.0)",
        "type": "BadRequestError",
        "param": "temperature",
        "code": 400,
    }
    lonely = await client.post("/v1/chat/completions", json=payload(top_logprobs=2))
    assert lonely.status_code == 400
    assert lonely.json()["error"] == {
        "message": "when using `top_logprobs`, `logprobs` must be set to true. (parameter=top_logprobs)",
        "type": "BadRequestError",
        "param": "top_logprobs",
        "code": 400,
    }
    greedy = await client.post("/v1/chat/completions", json=payload(logprobs=True, top_logprobs=50))
    assert greedy.json()["error"]["message"] == (
        "Requested sample logprobs of 50, which is greater than max allowed: 20 "
        "(parameter=logprobs, value=50)"
    )
    form = await client.post("/v1/chat/completions", data={"messages": "hi"})
    assert form.status_code == 400
    assert "Only 'application/json' is allowed" in form.json()["error"]["message"]


async def test_adapter_lifecycle(client: httpx.AsyncClient, adapters: dict[str, Path]) -> None:
    loaded = await load(client, "kb-life", adapters["a"])
    assert (loaded.status_code, loaded.text) == (200, "Success: LoRA adapter 'kb-life' added successfully.")

    card = next(m for m in (await client.get("/v1/models")).json()["data"] if m["id"] == "kb-life")
    assert (card["parent"], card["root"]) == ("base", str(adapters["a"]))
    adapted = await chat(client, "kb-life", 24)
    assert adapted["model"] == "kb-life"
    assert text(adapted) != await answer(client)

    again = await load(client, "kb-life", adapters["b"])
    assert again.status_code == 400
    assert again.json()["error"] == {
        "message": "The lora adapter 'kb-life' has already been loaded. If you want to load the adapter "
        "in place, set 'load_inplace' to True.",
        "type": "InvalidUserInput",
        "param": None,
        "code": 400,
    }
    clash = await load(client, "base", adapters["a"])
    assert (clash.status_code, clash.json()["error"]["type"]) == (400, "InvalidUserInput")

    removed = await unload(client, "kb-life")
    assert (removed.status_code, removed.text) == (
        200,
        "Success: LoRA adapter 'kb-life' removed successfully.",
    )
    assert (await client.post("/v1/chat/completions", json=payload("kb-life"))).status_code == 404
    gone = await unload(client, "kb-life")
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "The lora adapter 'kb-life' cannot be found."
    assert "kb-life" not in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]


REFUSALS = [
    pytest.param("rank32", 500, "LoRA rank 32 is greater than max_lora_rank 16.", id="rank"),
    pytest.param("modules_to_save", 500, "Unsupported modules_to_save: ['lm_head']", id="modules_to_save"),
    pytest.param("dora", 500, "vLLM does not yet support DoRA.", id="dora"),
    pytest.param("ia3", 500, "vLLM only serves LoRA adapters; this one is IA3.", id="not-lora"),
    pytest.param("foreign", 500, "but received ['model.layers.0.self_attn.qkv_fused'", id="unknown-modules"),
    pytest.param("missing", 404, "Loading lora kb-refused failed: No adapter found for <path>", id="no-path"),
]


@pytest.mark.parametrize(("kind", "status", "reason"), REFUSALS)
async def test_adapters_vllm_cannot_serve_are_refused(
    client: httpx.AsyncClient, adapters: dict[str, Path], kind: str, status: int, reason: str
) -> None:
    response = await load(client, "kb-refused", adapters[kind])

    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == ("NotFoundError" if status == 404 else "InternalServerError")
    assert reason in error["message"]
    if status == 500:  # vLLM's worker wraps the reason so
        assert error["message"].startswith("Call to add_lora method failed: Worker failed with error '")
    assert "kb-refused" not in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]


def peft_reference(engine: Engine, adapter: Path) -> str:
    """The adapter's greedy answer from peft's own generate(), on a fresh copy of the base model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(engine.config.model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    prompt = engine.tokenizer.apply_chat_template(
        QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.inference_mode():
        output = model.generate(input_ids=prompt, max_new_tokens=24, do_sample=False)
    return str(engine.tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True))


async def test_concurrent_adapters_never_mix(
    client: httpx.AsyncClient, engine: Engine, adapters: dict[str, Path]
) -> None:
    assert (await load(client, "kb-iso-a", adapters["a"])).status_code == 200
    assert (await load(client, "kb-iso-b", adapters["b"])).status_code == 200
    models = ["base", "kb-iso-a", "kb-iso-b"]
    sampled = {"temperature": 0.9, "seed": 1234}
    alone = {m: await answer(client, m) for m in models}
    alone_sampled = text(await chat(client, "kb-iso-a", 12, **sampled))
    assert len(set(alone.values())) == 3, alone  # each adapter visibly changes the greedy answer

    together = await asyncio.gather(
        *(chat(client, m, 24) for m in models * 2), chat(client, "kb-iso-a", 12, **sampled)
    )

    assert [text(body) for body in together[:-1]] == [alone[m] for m in models * 2]
    assert alone["kb-iso-a"] == peft_reference(engine, adapters["a"])
    assert text(together[-1]) == alone_sampled  # a seeded sample does not depend on its neighbours
    assert engine.worker.stats.peak_adapters >= 3  # base and both adapters shared a forward pass


async def test_more_adapters_than_max_loras_all_answer(
    client: httpx.AsyncClient, engine: Engine, adapters: dict[str, Path]
) -> None:
    names = [f"kb-many-{i}" for i in range(5)]
    for i, name in enumerate(names):
        assert (await load(client, name, adapters["ab"[i % 2]])).status_code == 200
    answers = await asyncio.gather(*(chat(client, name, 4) for name in names))
    assert [a["model"] for a in answers] == names
    assert engine.worker.stats.peak_adapters <= 1 + engine.config.max_loras  # the base plus max_loras


async def test_load_and_unload_while_requests_are_in_flight(
    client: httpx.AsyncClient, adapters: dict[str, Path]
) -> None:
    assert (await load(client, "kb-live", adapters["a"])).status_code == 200
    expected = {m: await answer(client, m) for m in ("base", "kb-live")}
    arrivals: list[float] = []

    async def streamed() -> str:
        pieces = []
        async with client.stream(
            "POST", "/v1/chat/completions", json=payload("kb-live", 24, stream=True)
        ) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.monotonic())
                    pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
        return "".join(pieces)

    requests = [asyncio.create_task(chat(client, m, 24)) for m in ("base", "kb-live", "base", "kb-live")]
    live_stream = asyncio.create_task(streamed())
    while len(arrivals) < 3:  # generation is under way
        await asyncio.sleep(0.05)
    assert (await load(client, "kb-new", adapters["b"])).status_code == 200
    assert (await unload(client, "kb-live")).status_code == 200
    swapped_at = time.monotonic()
    bodies = await asyncio.gather(*requests)
    live_text = await live_stream

    assert arrivals[-1] > swapped_at, "the swap should have happened mid-generation"
    assert [text(b) for b in bodies] == [expected[m] for m in ("base", "kb-live", "base", "kb-live")]
    assert live_text == expected["kb-live"]  # unloading never switches weights under a running request
    assert (await client.post("/v1/chat/completions", json=payload("kb-live"))).status_code == 404
    assert (await chat(client, "kb-new", 4))["model"] == "kb-new"


async def test_requests_of_clients_that_went_away_stop_generating(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    long = payload(max_tokens=2000, ignore_eos=True)
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json=long, timeout=1.0)
    async with client.stream("POST", "/v1/chat/completions", json={**long, "stream": True}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content":""' not in line:
                break  # one token arrived; hang up
    deadline = time.monotonic() + 60
    while engine.worker.running and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert engine.worker.running == 0


async def test_concurrent_requests_are_batched(client: httpx.AsyncClient, engine: Engine) -> None:
    """A functional check that batching happens, not a benchmark: the bound is deliberately loose."""
    body = payload(max_tokens=16, ignore_eos=True)
    await client.post("/v1/chat/completions", json=body)  # warm-up
    started = time.monotonic()
    single = await client.post("/v1/chat/completions", json=body)
    one = time.monotonic() - started
    started = time.monotonic()
    eight = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(8)))
    together = time.monotonic() - started

    assert single.status_code == 200 and all(r.status_code == 200 for r in eight)
    assert all(r.json()["usage"]["completion_tokens"] == 16 for r in eight)
    print(f"\nsingle: {16 / one:.1f} tokens/s; 8 concurrent: {8 * 16 / together:.1f} tokens/s aggregate")
    assert together < 0.6 * 8 * one
    assert engine.worker.stats.peak_rows >= 8


async def test_with_an_api_key_every_v1_route_wants_it(engine: Engine, adapters: dict[str, Path]) -> None:
    with serve(create_app(engine, api_key="s3cret")) as url:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            assert (await http.get("/health")).status_code == 200  # load balancers ask without one
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                refused = await http.get("/v1/models", headers=headers)
                assert (refused.status_code, refused.json()) == (401, {"error": "Unauthorized"})
            body = {"lora_name": "keyless", "lora_path": str(adapters["a"])}
            assert (await http.post("/v1/load_lora_adapter", json=body)).status_code == 401
        keyed = AsyncModelClient(url, api_key="s3cret", retries=0)
        keyless = AsyncModelClient(url, retries=0)
        try:
            assert "base" in await keyed.models()
            with pytest.raises(NotAuthorized, match="MODEL_SERVER_API_KEY"):
                await keyless.models()
            with pytest.raises(NotAuthorized):
                await keyless.load_adapter("keyless", str(adapters["a"]))
            assert "keyless" not in await keyed.models()
        finally:
            await keyed.aclose()
            await keyless.aclose()
