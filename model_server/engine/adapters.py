"""LoRA adapters: refuse, with vLLM's reasons, what vLLM cannot serve.

`check_adapter` applies vLLM 0.32's checks (`PEFTHelper.validate_legal` and the checkpoint's
module names) with vLLM's messages, so an adapter that works here also loads into vLLM and one
that vLLM refuses is refused here first, saying why. Loading happens in resident.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from model_server.engine.errors import NotFound, ServerError

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")
_REQUIRED = ("r", "lora_alpha", "target_modules")
# init_lora_weights values that only set the starting point; others (PiSSA, OLoRA, LoftQ) change the base
_PLAIN_INITS = ("gaussian", "eva", "orthogonal", "mica", "lora_ga")


@dataclass(frozen=True)
class AdapterEntry:
    name: str  # the public name, vLLM's lora_name
    path: str  # as given; /v1/models reports it as `root`
    key: str  # the peft adapter name, unique per loaded version


def worker_failure(reason: str) -> ServerError:
    """vLLM reports an adapter its worker refuses as a 500 with this wrapper around the reason."""
    return ServerError(
        f"Call to add_lora method failed: Worker failed with error '{reason}', "
        "please check the stack trace above for the root cause"
    )


def supported_modules(model: nn.Module) -> set[str]:
    """Linear layers inside the decoder that a LoRA may target (vLLM's set for Llama-style models)."""
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    return names - {"lm_head"}


def check_adapter(name: str, path: str, *, max_rank: int, modules: set[str]) -> None:
    """Raise NotFound (404) or a worker failure (500) for an adapter vLLM would refuse."""
    directory = Path(path)
    config_file = directory / "adapter_config.json"
    if not config_file.is_file():
        raise NotFound(f"Loading lora {name} failed: No adapter found for {path}")
    try:
        config: dict[str, Any] = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise worker_failure(f"{config_file} is not readable JSON: {exc}") from None
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        # vLLM would only say which LoRA fields are missing; naming the method says why
        raise worker_failure(f"vLLM only serves LoRA adapters; this one is {config['peft_type']}.")
    missing = sorted(f for f in _REQUIRED if f not in config)
    if missing:
        raise worker_failure(f"Missing required configuration fields: {{{', '.join(map(repr, missing))}}}")
    problems = _unsupported_features(config, max_rank)
    if problems:
        raise worker_failure(" ".join(problems))
    weights = next((directory / f for f in WEIGHT_FILES if (directory / f).is_file()), None)
    if weights is None:
        raise worker_failure(f"{path} doesn't contain tensors")
    if weights.suffix == ".safetensors":
        _check_modules(weights, config, modules)


def _unsupported_features(config: dict[str, Any], max_rank: int) -> list[str]:
    problems = []
    unsupported_saved = [m for m in config.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if unsupported_saved:
        problems.append(
            'vLLM only supports modules_to_save being either None or ["classifier", "score"] for '
            f"classification models. Unsupported modules_to_save: {unsupported_saved}"
        )
    if config.get("use_dora"):
        problems.append("vLLM does not yet support DoRA.")
    if config.get("lora_bias"):
        problems.append("vLLM does not support LoRA bias (lora_bias).")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in _PLAIN_INITS:
        problems.append(f"vLLM does not support init_lora_weights={init!r}.")
    if config.get("layer_replication"):
        problems.append("vLLM does not support layer_replication.")
    ranks = [int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    if max(ranks) > max_rank:
        problems.append(f"LoRA rank {max(ranks)} is greater than max_lora_rank {max_rank}.")
    if config.get("bias", "none") != "none":
        problems.append("Adapter bias is not supported.")
    return problems


def _check_modules(weights: Path, config: dict[str, Any], modules: set[str]) -> None:
    from safetensors import safe_open

    saved = set(config.get("modules_to_save") or ())
    unexpected = []
    with safe_open(str(weights), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
            module = key.removeprefix("base_model.model.").split(".lora_")[0]
            base_name = module.rsplit(".", 1)[-1]
            if base_name not in modules and base_name not in saved and module not in unexpected:
                unexpected.append(module)
    if unexpected:
        expected = "{" + ", ".join(repr(m) for m in sorted(modules)) + "}"
        raise worker_failure(
            f"While loading {weights.parent}, expected target modules in {expected} but received "
            f"{unexpected}. Please verify that the loaded LoRA module is correct"
        )
