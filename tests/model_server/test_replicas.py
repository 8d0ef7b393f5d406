"""Several model servers as one client (`model_server.replicas`), against handler functions standing
in for each server (httpx.MockTransport): how questions spread, when another replica takes over, and
how adapters reach every replica. tests/retrain/test_promote_replicas.py runs it on real engines."""

from __future__ import annotations

import json

import httpx
import pytest

from model_server.client import AsyncModelClient, ChatResult, ModelClient
from model_server.errors import ModelNotFound, ModelServerUnavailable, NotAuthorized
from model_server.replicas import AsyncReplicas, ReplicaFailed, connect, members

QUESTION = [{"role": "user", "content": "Leave?"}]


class FakeServer:
    """One replica: serves `models`, answers chats naming itself, or fails as told."""

    def __init__(self, name: str, models: list[str] | None = None) -> None:
        self.name, self.models = name, list(models or ["base"])
        self.down = False
        self.status = 200
        self.chats: list[str] = []
        self.loads: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": m} for m in self.models]})
        if request.url.path == "/health":
            return httpx.Response(200)
        body = json.loads(request.content)
        if request.url.path == "/v1/load_lora_adapter":
            self.loads.append(body["lora_name"])
            if self.status != 200:
                return httpx.Response(self.status, json={"error": {"message": "no room for it"}})
            self.models.append(body["lora_name"])
            return httpx.Response(200, text="ok")
        if request.url.path == "/v1/unload_lora_adapter":
            self.models.remove(body["lora_name"])
            return httpx.Response(200, text="ok")
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": f"status {self.status}"}})
        if body["model"] not in self.models:
            return httpx.Response(
                404, json={"error": {"message": f"The model `{body['model']}` does not exist."}}
            )
        self.chats.append(body["model"])
        if body.get("stream"):
            chunk = {"choices": [{"index": 0, "delta": {"content": self.name}, "finish_reason": "stop"}]}
            text = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
            return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
        choice = {"index": 0, "message": {"role": "assistant", "content": self.name}, "finish_reason": "stop"}
        return httpx.Response(200, json={"model": body["model"], "choices": [choice]})


def replicas(*servers: FakeServer) -> AsyncReplicas:
    return AsyncReplicas(
        [
            AsyncModelClient(f"http://{s.name}", transport=httpx.MockTransport(s.handle), retries=0)
            for s in servers
        ]
    )


def sync(*servers: FakeServer) -> ModelClient:
    return ModelClient(replicas(*servers))


def test_questions_take_turns_over_the_replicas() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    with sync(a, b) as client:
        answers = [client.chat(QUESTION, model="base", logprobs=False).text for _ in range(4)]
    assert answers == ["a", "b", "a", "b"]


def test_a_replica_that_is_down_is_passed_over_and_then_tried_last() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    a.down = True
    with sync(a, b) as client:
        answers = [client.chat(QUESTION, model="base", logprobs=False).text for _ in range(3)]
    assert answers == ["b", "b", "b"]
    assert a.chats == []


@pytest.mark.parametrize("failure", ["404", "500"])
def test_another_replica_answers_where_one_lacks_the_adapter_or_errs(failure: str) -> None:
    a, b = FakeServer("a", ["base"]), FakeServer("b", ["base", "kb-v2"])
    if failure == "500":
        a.models.append("kb-v2")
        a.status = 500
    with sync(a, b) as client:
        assert client.chat(QUESTION, model="kb-v2", logprobs=False).text == "b"


def test_an_adapter_no_replica_serves_is_model_not_found() -> None:
    with sync(FakeServer("a"), FakeServer("b")) as client, pytest.raises(ModelNotFound, match="kb-v9"):
        client.chat(QUESTION, model="kb-v9", logprobs=False)


def test_every_replica_down_names_the_failure() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    a.down = b.down = True
    with sync(a, b) as client, pytest.raises(ModelServerUnavailable):
        client.chat(QUESTION, model="base", logprobs=False)


def test_a_wrong_key_is_not_tried_elsewhere() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    a.status = 401
    with sync(a, b) as client, pytest.raises(NotAuthorized):
        client.chat(QUESTION, model="base", logprobs=False)
    assert b.chats == []


async def test_a_stream_moves_to_another_replica_before_its_first_words() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    a.down = True
    client = replicas(a, b)
    items = [item async for item in client.chat_stream(QUESTION, model="base", logprobs=False)]
    await client.aclose()
    assert items[0] == "b" and isinstance(items[-1], ChatResult)


def test_an_adapter_is_loaded_on_every_replica_that_lacks_it() -> None:
    a, b = FakeServer("a", ["base", "kb-v1"]), FakeServer("b")
    with sync(a, b) as client:
        assert client.models() == ["base"]  # kb-v1 is on one replica only
        client.load_adapter("kb-v1", "/adapters/kb-v1")
        assert client.models() == ["base", "kb-v1"]
        client.unload_adapter("kb-v1")
    assert a.loads == [] and b.loads == ["kb-v1"]  # a had it: not loaded twice
    assert a.models == b.models == ["base"]


@pytest.mark.parametrize("how", ["down", "refuses"])
def test_a_replica_that_cannot_load_is_named(how: str) -> None:
    a, b = FakeServer("a"), FakeServer("b")
    if how == "down":
        b.down = True
    else:
        b.status = 400
    with sync(a, b) as client, pytest.raises(ReplicaFailed, match="http://b") as failed:
        client.load_adapter("kb-v1", "/adapters/kb-v1")
    expected: type[Exception] = ModelServerUnavailable if how == "down" else Exception
    assert isinstance(failed.value.cause, expected)


def test_health_needs_every_replica() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    with sync(a, b) as client:
        assert client.health()
        b.down = True
        assert not client.health()


def test_one_url_is_a_plain_client_and_members_splits_several() -> None:
    single = connect(["http://127.0.0.1:9"])
    assert type(single.inner) is AsyncModelClient and members(single) == [single]
    several = connect(["http://127.0.0.1:9", "http://127.0.0.1:10/"])
    assert [m.base_url for m in members(several)] == ["http://127.0.0.1:9", "http://127.0.0.1:10"]
    single.close()
    several.close()
