"""The embedded engine's pieces that need no model: text deltas, request parsing, adapter checks,
the padded KV batch and sampling. Fast; the HTTP behaviour on the real model is in test_engine.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import DynamicCache

from model_server.engine.adapters import check_adapter
from model_server.engine.errors import BadRequest, EngineError, NotFound, ServerError, ValidationFailed
from model_server.engine.kvcache import PaddedBatch
from model_server.engine.protocol import ChatCompletionRequest, parse_body
from model_server.engine.sampling import SamplingParams, choose, make_generator
from model_server.engine.text import TextTracker

MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


class PieceTokenizer:
    """Token i decodes to PIECES[i]; bytes.decode with 'replace' mimics a byte-level BPE."""

    PIECES = (b"Hello", b",", b" wor", b"ld", b"!", b" \xe2\x82", b"\xac", b" END", b" more")

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return b"".join(self.PIECES[i] for i in ids).decode("utf-8", errors="replace")


def deltas(tokens: list[int], stop: tuple[str, ...] = ()) -> tuple[list[str], str | None, str]:
    tracker = TextTracker(PieceTokenizer(), stop)
    pieces, hit = [], None
    for n, token in enumerate(tokens):
        hit = tracker.add(token)
        pieces.append(tracker.delta(finished=hit is not None or n == len(tokens) - 1))
        if hit:
            break
    return pieces, hit, tracker.text


def test_deltas_concatenate_to_the_text_and_hold_back_partial_characters() -> None:
    pieces, hit, full = deltas([0, 1, 2, 3, 5, 6])
    assert hit is None
    assert "".join(pieces) == full == "Hello, world €"
    assert pieces[4] == " "  # the euro sign's first bytes are held until its last byte arrives
    assert pieces[5] == "€"


def test_stop_string_across_tokens_is_cut_and_never_streamed() -> None:
    pieces, hit, full = deltas([0, 1, 2, 3, 4, 8], stop=("world",))
    assert hit == "world"
    assert full == "Hello, "
    assert "".join(pieces) == "Hello, "
    assert not any("wor" in piece for piece in pieces)


def test_earliest_stop_string_wins() -> None:
    _, hit, full = deltas([0, 1, 2, 3, 7], stop=(" END", "ld"))
    assert (hit, full) == ("ld", "Hello, wor")


def parse(body: Any, content_type: str = "application/json") -> ChatCompletionRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_body(raw, content_type, ChatCompletionRequest)


def test_request_parsing_refuses_like_vllm() -> None:
    with pytest.raises(ValidationFailed) as missing:
        parse({"model": "base", "max_tokens": 5})
    assert missing.value.body() == {
        "error": {
            "message": "1 validation error:\n  {'type': 'missing', 'loc': 'body.messages', "
            "'msg': 'Field required', 'input': '<dict of 2 items>'}",
            "type": "Bad Request",
            "param": "body.messages",
            "code": 400,
        }
    }
    with pytest.raises(ValidationFailed) as not_json:
        parse(b"", "text/plain")
    assert "Only 'application/json' is allowed" in not_json.value.message
    with pytest.raises(BadRequest) as options:
        parse({"messages": [], "stream_options": {"include_usage": True}})
    assert options.value.body()["error"] == {
        "message": "Stream options can only be defined when `stream=True`. (parameter=stream_options)",
        "type": "BadRequestError",
        "param": "stream_options",
        "code": 400,
    }
    request = parse({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": None, "tools": []})
    assert request.top_logprobs == 0  # null means omitted; unknown fields are ignored, as in vLLM


def write_adapter(directory: Path, weights: bool = True, **config: Any) -> str:
    directory.mkdir(parents=True)
    base = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "bias": "none"}
    (directory / "adapter_config.json").write_text(json.dumps(base | config))
    if weights:
        (directory / "adapter_model.bin").write_bytes(b"")
    return str(directory)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"r": 64}, "LoRA rank 64 is greater than max_lora_rank 16."),
        ({"rank_pattern": {"q_proj": 32}}, "LoRA rank 32 is greater than max_lora_rank 16."),
        ({"use_dora": True}, "vLLM does not yet support DoRA."),
        ({"modules_to_save": ["lm_head"]}, "Unsupported modules_to_save: ['lm_head']"),
        ({"bias": "all"}, "Adapter bias is not supported."),
        ({"init_lora_weights": "pissa"}, "vLLM does not support init_lora_weights='pissa'."),
        ({"peft_type": "LOHA"}, "vLLM only serves LoRA adapters; this one is LOHA."),
    ],
)
def test_adapters_vllm_refuses(tmp_path: Path, config: dict[str, Any], reason: str) -> None:
    path = write_adapter(tmp_path / "adapter", **config)
    with pytest.raises(ServerError) as refused:
        check_adapter("kb", path, max_rank=16, modules=MODULES)
    assert reason in refused.value.message
    assert refused.value.body()["error"]["code"] == 500


def test_missing_adapter_is_404_and_weightless_one_500(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as missing:
        check_adapter("kb", str(tmp_path / "nowhere"), max_rank=16, modules=MODULES)
    assert missing.value.body()["error"]["message"] == "Loading lora kb failed: No adapter found for <path>"
    with pytest.raises(ServerError) as empty:
        check_adapter("kb", write_adapter(tmp_path / "empty", weights=False), max_rank=16, modules=MODULES)
    assert "<path> doesn't contain tensors" in empty.value.body()["error"]["message"]
    check_adapter("kb", write_adapter(tmp_path / "fine"), max_rank=16, modules=MODULES)


def cache_of(keys: list[torch.Tensor]) -> DynamicCache:
    cache = DynamicCache()
    for layer, tensor in enumerate(keys):
        cache.update(tensor, -tensor, layer)
    return cache


def test_padded_batch_merges_on_the_left_and_trims_unneeded_padding() -> None:
    old = torch.arange(1, 1 + 2 * 1 * 3 * 2, dtype=torch.float).reshape(2, 1, 3, 2)  # 2 rows, 3 columns
    new = torch.full((1, 1, 5, 2), 9.0)  # 1 row, 5 columns
    batch = PaddedBatch(cache_of([old, old]), torch.tensor([[1, 1, 1], [0, 1, 1]]))
    batch.extend(PaddedBatch(cache_of([new, new]), torch.ones(1, 5, dtype=torch.long)))

    assert batch.mask.tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    layer = batch.cache.layers[0]
    assert layer.keys is not None and layer.values is not None
    assert torch.equal(layer.keys[0, :, 2:], old[0]) and torch.equal(layer.keys[2], new[0])
    assert torch.equal(layer.values[1, :, 2:], -old[1])

    batch.keep([1, 0])  # the long row left: two columns of padding are no longer needed by anyone
    assert batch.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert layer.keys is not None and torch.equal(layer.keys, torch.stack([old[1], old[0]]))
    assert batch.add_column().shape == (2, 4)


def test_greedy_and_seeded_sampling() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    greedy = SamplingParams(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=2)
    choices = choose(logits, [greedy, greedy], [None, None])
    assert [c.token for c in choices] == [1, 0]
    assert choices[0].logprob == pytest.approx(float(torch.log_softmax(logits[0], -1)[1]))
    assert [t for t, _ in choices[0].top] == [1, 2]

    hot = SamplingParams(max_tokens=1, temperature=2.0, seed=7)
    wide = torch.zeros(1, 1000)
    runs = [
        [choose(wide, [hot], [g])[0].token for _ in range(5)] for g in (make_generator(7), make_generator(7))
    ]
    assert runs[0] == runs[1] and len(set(runs[0])) > 1
    narrow = SamplingParams(max_tokens=1, temperature=1.0, top_p=0.01, seed=1)
    assert choose(logits, [narrow], [make_generator(1)])[0].token == 1  # only the top token survives top_p


def test_every_error_has_vllms_shape() -> None:
    body = EngineError("boom at /tmp/x/y.py").body()
    assert body == {
        "error": {"message": "boom at <path>", "type": "InternalServerError", "param": None, "code": 500}
    }
