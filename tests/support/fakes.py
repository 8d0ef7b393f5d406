"""Fakes for what is remote, shared by every platform's harness (Slack, Teams, the console) and by
tests of the pipeline itself: passages and a retriever that returns them, a model server that
answers like vLLM's chat completions (behind `httpx.MockTransport`), and the real pipeline built on
both over a real store."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from bot.pipeline import Pipeline
from feedback.db import Database
from model_server.client import AsyncModelClient

Payload = dict[str, Any]


@dataclass(frozen=True)
class FakePassage:
    id: str
    title: str
    text: str
    source: str
    url: str | None = None
    score: float = 1.0
    similarity: float = 0.7  # the question's cosine to it: well above retrieval's floors


PASSAGES = [
    FakePassage(
        "leave-1",
        "Annual Leave > Allowance",
        "Everyone gets 27 days of leave a year.",
        "benefits-and-leave/annual-leave.md",
        "https://wiki.larkspur.example/leave?section=allowance&v=2",
    ),
    FakePassage(
        "leave-2",
        "Annual Leave > Carrying over",
        "Up to 5 days carry over to March 31.",
        "benefits-and-leave/annual-leave.md",
    ),
]


class FakeRetriever:
    def __init__(self, passages: list[FakePassage]) -> None:
        self.passages = passages

    def search(self, query: str, k: int = 5) -> list[FakePassage]:
        return self.passages[:k]


class FakeModel:
    """Answers like vLLM's chat completions; records the requests. `down` refuses connections;
    `delay` makes it slow; `too_slow` makes the client give up waiting, as httpx reports it.
    Asked to stream, it sends `text` a word at a time in vLLM's chunks (logprobs when asked, the
    usage last); `gate`, when given, holds the stream after its first two words until it is set;
    `fail_after` words in, it sends vLLM's mid-stream error event instead of the rest. Asked for
    `top_logprobs` (bot.grounding's check), it answers "Yes" with P(yes) = `yes` among the first
    token's alternatives."""

    def __init__(self, text: str = "You get 27 days of leave a year.") -> None:
        self.text = text
        self.down = False
        self.too_slow = False
        self.delay = 0.0
        self.requests: list[Payload] = []
        self.active = self.most_active = 0
        self.logprobs = [-0.2]  # of the answer's tokens; sets the confidence the client computes
        self.gate: asyncio.Event | None = None
        self.fail_after: int | None = None
        self.yes = 0.9

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.too_slow:
            raise httpx.ReadTimeout("timed out", request=request)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        if body.get("stream"):
            return httpx.Response(
                200, content=self._chunks(body), headers={"content-type": "text/event-stream"}
            )
        if body.get("top_logprobs"):
            return self._yes_or_no(body)
        return httpx.Response(
            200,
            json={
                "model": body["model"],
                "choices": [
                    {
                        "message": {"role": "assistant", "content": self.text},
                        "finish_reason": "stop",
                        "logprobs": {"content": [{"token": "x", "logprob": lp} for lp in self.logprobs]},
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 9},
            },
        )

    def _yes_or_no(self, body: Payload) -> httpx.Response:
        top = [("Yes", self.yes), ("No", 1 - self.yes), ("Maybe", 0.0)]
        alternatives = [{"token": t, "logprob": math.log(max(p, 1e-9))} for t, p in top]
        first = {"token": "Yes", "logprob": alternatives[0]["logprob"], "top_logprobs": alternatives}
        choice = {"message": {"role": "assistant", "content": "Yes"}, "finish_reason": "length"}
        choice["logprobs"] = {"content": [first]}
        return httpx.Response(200, json={"model": body["model"], "choices": [choice], "usage": {}})

    async def _chunks(self, body: Payload) -> AsyncIterator[bytes]:
        words = re.findall(r"\s*\S+", self.text) or [self.text]
        # one logprob per word, the rest with the last word (vLLM may send several in a chunk)
        shares = [self.logprobs[i : i + 1] for i in range(len(words) - 1)]
        shares.append(self.logprobs[len(words) - 1 :])

        def event(data: Payload | str) -> bytes:
            return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()

        yield event({"model": body["model"], "choices": [{"delta": {"role": "assistant", "content": ""}}]})
        for i, (word, share) in enumerate(zip(words, shares, strict=True)):
            if i == 2 and self.gate is not None:
                await self.gate.wait()
            if i == self.fail_after:
                yield event({"error": {"message": "engine died", "type": "InternalServerError", "code": 500}})
                return
            logprobs = (
                {"content": [{"token": "x", "logprob": lp} for lp in share]} if body.get("logprobs") else None
            )
            last = i == len(words) - 1
            choice = {
                "delta": {"content": word},
                "logprobs": logprobs,
                "finish_reason": "stop" if last else None,
            }
            yield event({"model": body["model"], "choices": [choice]})
            await asyncio.sleep(0)
        usage = {"prompt_tokens": 50, "completion_tokens": len(words)}
        yield event({"model": body["model"], "choices": [], "usage": usage})
        yield event("[DONE]")


def fake_pipeline(
    database: Database, model: FakeModel, passages: list[FakePassage] | None = None
) -> Pipeline:
    """The real pipeline, recording into `database`, with the fake retriever (`PASSAGES` unless told)
    and `model` as its model server."""
    client = AsyncModelClient("http://model.test", transport=httpx.MockTransport(model), retries=0)
    return Pipeline(
        retriever=FakeRetriever(PASSAGES if passages is None else passages),
        client=client,
        model_name=lambda: "kb-v1",
        database=database,
    )


class FakeLoraServer:
    """vLLM's runtime-LoRA surface for an httpx.MockTransport: the served names, loading and
    unloading adapters, and a chat answered by whichever is asked (refused for one not loaded)."""

    def __init__(self, base: str = "base") -> None:
        self.served = [base]
        self.refuse_loading = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": n} for n in self.served]})
        if request.url.path == "/v1/load_lora_adapter":
            if self.refuse_loading:
                return httpx.Response(400, json={"error": {"message": "cannot load", "code": 400}})
            self.served.append(body["lora_name"])
            return httpx.Response(200, text="loaded")
        if request.url.path == "/v1/unload_lora_adapter":
            self.served.remove(body["lora_name"])
            return httpx.Response(200, text="unloaded")
        if body.get("model") not in self.served:
            return httpx.Response(404, json={"error": {"message": "model not found", "code": 404}})
        choice = {"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        return httpx.Response(200, json={"model": body["model"], "choices": [choice], "usage": {}})
