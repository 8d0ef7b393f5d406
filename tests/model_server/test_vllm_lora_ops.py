"""vllm_serve.py's CPU LoRA ops against a token-by-token reference, and against real vLLM: a
base-model question batched beside adapter questions gets the base model's answer."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import torch

from model_server import vllm_serve
from model_server.client import AsyncModelClient
from retrain.train import TrainConfig
from tests.support.lora import make_lora
from tests.support.model_servers import NO_VLLM, SHORT_QUESTION, running_server, vllm_python, wiki_question

SLOTS, RANK, IN, OUT = 3, 8, 24, 40


def reference(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Row by row: the adapter in the token's slot, nothing for -1 (no adapter)."""
    weights = weights.squeeze(1) if weights.dim() == 4 else weights
    rows = [
        torch.zeros(weights.shape[1]) if slot < 0 else inputs[t].float() @ weights[slot].float().T
        for t, slot in enumerate(indices.tolist())
    ]
    return torch.stack(rows)


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "x": torch.randn(7, IN),
        "a": torch.randn(SLOTS, 1, RANK, IN),  # vLLM stacks weights as [slots, 1, out, in]
        "b": torch.randn(SLOTS, 1, OUT, RANK),
        "mixed": torch.tensor([0, 0, -1, 2, 2, -1, 1]),
    }


@pytest.mark.parametrize(
    "indices",
    [torch.tensor([1] * 7), torch.tensor([0, 0, -1, 2, 2, -1, 1]), torch.tensor([-1] * 7)],
    ids=["one-adapter", "mixed", "no-adapter"],
)
def test_shrink_and_expand_match_the_token_by_token_reference(
    tensors: dict[str, torch.Tensor], indices: torch.Tensor
) -> None:
    x, a, b = tensors["x"], tensors["a"], tensors["b"]
    shrunk = torch.full((7, RANK + 2), 5.0)  # wider than the rank: the rest must stay as it was
    vllm_serve.bgmv_shrink(x, a, shrunk, indices, 0.5)
    torch.testing.assert_close(shrunk[:, :RANK], 0.5 * reference(x, a, indices))
    assert torch.all(shrunk[:, RANK:] == 5.0)

    start = torch.randn(7, OUT)
    added = start.clone()
    vllm_serve.bgmv_expand(shrunk[:, :RANK], b, added, indices, add_inputs=True)
    torch.testing.assert_close(added, start + reference(shrunk[:, :RANK], b, indices))
    written = start.clone()
    vllm_serve.bgmv_expand(shrunk[:, :RANK], b[:, 0], written, indices, add_inputs=False)  # 3-D weights
    torch.testing.assert_close(written, reference(shrunk[:, :RANK], b, indices))


def test_expand_slice_writes_only_its_slice(tensors: dict[str, torch.Tensor]) -> None:
    x, b, indices = torch.randn(7, RANK), tensors["b"], tensors["mixed"]
    out = torch.ones(7, OUT + 20)
    vllm_serve.bgmv_expand_slice(x, b, out, indices, slice_offset=10, slice_size=OUT, add_inputs=True)
    torch.testing.assert_close(out[:, 10 : 10 + OUT], 1.0 + reference(x, b, indices))
    assert torch.all(out[:, :10] == 1.0) and torch.all(out[:, 10 + OUT :] == 1.0)


def test_prefill_ops_spread_each_sequence_index_over_its_tokens(tensors: dict[str, torch.Tensor]) -> None:
    x, a = tensors["x"], tensors["a"]
    lengths, per_sequence = torch.tensor([3, 1, 3]), torch.tensor([2, -1, 0])
    per_token = torch.tensor([2, 2, 2, -1, 0, 0, 0])
    starts = torch.tensor([0, 3, 4])
    out = torch.zeros(7, RANK)
    vllm_serve.sgmv_shrink(x, a, out, starts, lengths, per_sequence, 3, 3, 7, 1.0)
    torch.testing.assert_close(out, reference(x, a, per_token))

    y = torch.randn(7, RANK)
    expanded = torch.zeros(7, OUT)
    vllm_serve.sgmv_expand(
        y, tensors["b"], expanded, starts, lengths, per_sequence, 3, 3, 7, add_inputs=False
    )
    torch.testing.assert_close(expanded, reference(y, tensors["b"], per_token))
    sliced = torch.zeros(7, OUT + 4)
    vllm_serve.sgmv_expand_slice(
        y, tensors["b"], sliced, starts, lengths, per_sequence, 3, 3, 7, 4, OUT, False
    )
    torch.testing.assert_close(sliced[:, 4:], reference(y, tensors["b"], per_token))


def test_the_output_dtype_is_the_output_tensors(tensors: dict[str, torch.Tensor]) -> None:
    # vLLM keeps weights and activations in the model's dtype; bfloat16 outputs stay bfloat16
    x, a, indices = tensors["x"].bfloat16(), tensors["a"].bfloat16(), tensors["mixed"]
    out = torch.zeros(7, RANK, dtype=torch.bfloat16)
    vllm_serve.bgmv_shrink(x, a, out, indices, 1.0)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference(x, a, indices), rtol=2e-2, atol=5e-2)


def test_install_leaves_vllm_alone_where_its_cpu_wrapper_is_missing() -> None:
    # this environment has no vLLM: nothing to replace, and the server would run vLLM's own ops
    assert vllm_serve.install() is False


@pytest.mark.slow
@pytest.mark.vllm
def test_a_base_question_beside_adapter_questions_gets_the_base_answer(
    base_model_dir: Path, tmp_path: Path
) -> None:
    """With one adapter slot, vLLM's own CPU ops read "no adapter" (-1) as that slot: the base
    model's question, batched with the adapter's, was answered with the adapter's delta."""
    adapter = make_lora(
        base_model_dir, tmp_path / "adapter", seed=3, target_modules=list(TrainConfig().target_modules)
    )

    async def ask(client: AsyncModelClient, messages: list[dict[str, str]], model: str) -> str:
        result = await client.chat(messages, model=model, max_tokens=24, temperature=0.0, logprobs=False)
        return result.text

    async def scenario(url: str) -> None:
        client = AsyncModelClient(url, timeout=300)
        await client.load_adapter("taught", str(adapter))
        base_alone = await ask(client, SHORT_QUESTION, "base")
        adapter_alone = await ask(client, wiki_question(1), "taught")
        assert base_alone != await ask(client, SHORT_QUESTION, "taught")
        together = await asyncio.gather(
            *(ask(client, wiki_question(n), "taught") for n in (1, 2, 3)),
            ask(client, SHORT_QUESTION, "base"),
        )
        await client.aclose()
        assert together[-1] == base_alone
        assert together[0] == adapter_alone

    with running_server("vllm", base_model_dir, tmp_path / "vllm.log", max_loras=1, dtype="float32") as url:
        asyncio.run(scenario(url))
        log = (tmp_path / "vllm.log").read_text()
    assert "CPU LoRA ops group tokens by adapter (engine core)" in log


PARITY = """
import importlib.util, sys, torch
from vllm.lora.ops import torch_ops as stock
spec = importlib.util.spec_from_file_location("vllm_serve", sys.argv[1])
ours = importlib.util.module_from_spec(spec); spec.loader.exec_module(ours)
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16):
    x, a = torch.randn(9, 64, dtype=dtype), torch.randn(3, 1, 8, 64, dtype=dtype)
    b = torch.randn(3, 1, 96, 8, dtype=dtype)
    idx = torch.tensor([0, 0, 2, 2, 2, 1, 0, 1, 1])
    starts, lengths, per_sequence = torch.tensor([0, 2, 5]), torch.tensor([2, 3, 4]), torch.tensor([0, 2, 1])
    for name, args in [
        ("bgmv_shrink", lambda o: (x, a, o, idx, 0.5)),
        ("sgmv_shrink", lambda o: (x, a, o, starts, lengths, per_sequence, 3, 4, 9, 0.5)),
    ]:
        mine, theirs = torch.zeros(9, 8, dtype=dtype), torch.zeros(9, 8, dtype=dtype)
        getattr(ours, name)(*args(mine)); getattr(stock, name)(*args(theirs))
        torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-2)
    y = torch.randn(9, 8, dtype=dtype)
    for add in (True, False):
        mine, theirs = torch.ones(9, 100, dtype=dtype), torch.ones(9, 100, dtype=dtype)
        ours.bgmv_expand(y, b, mine, idx, add); stock.bgmv_expand(y, b, theirs, idx, add)
        torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-2)
        mine, theirs = torch.ones(9, 100, dtype=dtype), torch.ones(9, 100, dtype=dtype)
        ours.bgmv_expand_slice(y, b, mine, idx, 2, 96, add)
        stock.bgmv_expand_slice(y, b, theirs, idx, 2, 96, add)
        torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-2)
print("same")
"""


@pytest.mark.vllm
def test_for_adapter_tokens_the_ops_give_vllms_own_results() -> None:
    python = vllm_python()
    assert python is not None, NO_VLLM
    done = subprocess.run(
        [str(python), "-c", PARITY, str(vllm_serve.__file__)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("same")
