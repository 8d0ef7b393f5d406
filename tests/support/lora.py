"""LoRA adapters for tests, made with peft on the real test base model.

`make_lora` writes a rank-8 adapter on the attention projections whose lora_B is random (peft
starts it at zero, which would change nothing), seeded so that each seed is a different, repeatable
adapter that visibly changes greedy output. The variants are the adapters vLLM refuses: a rank over
the limit, `modules_to_save`, DoRA, a non-LoRA method, and modules the base model does not have.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import torch
from peft import IA3Config, LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


@cache
def _base(base_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)


def make_lora(
    base_dir: Path,
    out_dir: Path,
    *,
    rank: int = 8,
    seed: int = 0,
    modules_to_save: list[str] | None = None,
    use_dora: bool = False,
    b_scale: float = 0.2,
    target_modules: list[str] | None = None,
) -> Path:
    """Save a LoRA adapter for the model in `base_dir` into `out_dir` and return `out_dir`."""
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=target_modules or ATTENTION,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
        modules_to_save=modules_to_save,
        use_dora=use_dora,
    )
    model = get_peft_model(copy.deepcopy(_base(base_dir)), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, b_scale)
    model.save_pretrained(out_dir)
    return out_dir


def make_ia3(base_dir: Path, out_dir: Path) -> Path:
    """A peft adapter that is not a LoRA (IA³), which vLLM cannot serve."""
    config = IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"])
    get_peft_model(copy.deepcopy(_base(base_dir)), config).save_pretrained(out_dir)
    return out_dir


def make_foreign_lora(base_dir: Path, out_dir: Path) -> Path:
    """A LoRA whose weights target a module the base model lacks (`qkv_fused` instead of `q_proj`)."""
    make_lora(base_dir, out_dir)
    weights = out_dir / "adapter_model.safetensors"
    tensors = {key.replace("q_proj", "qkv_fused"): value for key, value in load_file(weights).items()}
    save_file(tensors, weights)
    config_file = out_dir / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["target_modules"] = ["qkv_fused", "k_proj", "v_proj", "o_proj"]
    config_file.write_text(json.dumps(config))
    return out_dir
