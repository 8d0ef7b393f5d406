"""Adapter versions on disk: `<ADAPTERS_DIR>/<prefix>-v<N>/`, each a new folder never overwritten.

A version folder holds what peft saved (`adapter_config.json`, `adapter_model.safetensors`),
`manifest.json` (base model, dataset hash, feedback range, parent version, code version, train
config, metrics, timings) and `loss_curve.png`. Before a version is registered in SQL it is checked
against what vLLM serves: plain LoRA, rank within the server's limit, no `modules_to_save`, no DoRA.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from retrain.errors import Unservable, VersionExists

MANIFEST = "manifest.json"
LOSS_CURVE = "loss_curve.png"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_REPO = Path(__file__).resolve().parent.parent


def version_number(name: str, prefix: str) -> int | None:
    match = re.fullmatch(rf"{re.escape(prefix)}-v(\d+)(?:\.work)?", name)
    return int(match.group(1)) if match else None


def next_version(adapters_dir: Path, prefix: str, taken: Iterable[str] = ()) -> str:
    """The next free `<prefix>-v<N>`: above every version in SQL (`taken`) and every folder on disk,
    so a folder left by a failed run is never reused either."""
    names = list(taken)
    if adapters_dir.is_dir():
        names += [p.name for p in adapters_dir.iterdir()]
    numbers = [n for n in (version_number(name, prefix) for name in names) if n is not None]
    return f"{prefix}-v{max(numbers, default=0) + 1}"


def claim_folder(adapters_dir: Path, name: str) -> Path:
    """The path for a new version; refused if anything is there already."""
    path = adapters_dir / name
    if path.exists():
        raise VersionExists(f"{path} exists already; adapter versions are never overwritten.")
    adapters_dir.mkdir(parents=True, exist_ok=True)
    return path


def check_servable(adapter_dir: Path, *, max_rank: int) -> dict[str, Any]:
    """The adapter's config if vLLM will serve it; otherwise Unservable listing every problem."""
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        raise Unservable(f"{adapter_dir} has no adapter_config.json.")
    config: dict[str, Any] = json.loads(config_file.read_text())
    problems = []
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        problems.append(f"it is a {config['peft_type']} adapter, not LoRA")
    ranks = [int(config.get("r", 0)), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    if max(ranks) > max_rank:
        problems.append(f"rank {max(ranks)} is above the server's limit of {max_rank}")
    if config.get("modules_to_save"):
        problems.append(f"it saves whole modules ({', '.join(config['modules_to_save'])})")
    if config.get("use_dora"):
        problems.append("it is a DoRA adapter")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append("it trains biases")
    if not any((adapter_dir / f).is_file() for f in WEIGHT_FILES):
        problems.append("it has no weights file")
    if problems:
        raise Unservable(f"vLLM would refuse {adapter_dir.name}: {'; '.join(problems)}.")
    return config


def code_version() -> str:
    """`git describe` of this checkout where there is one, else the installed package's version."""
    if (_REPO / ".git").exists():
        try:
            result = subprocess.run(
                ["git", "describe", "--always", "--dirty", "--tags"],
                cwd=_REPO,
                capture_output=True,
                text=True,
                timeout=10,
            )
            if result.returncode == 0 and result.stdout.strip():
                return f"git:{result.stdout.strip()}"
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        return f"package:{importlib.metadata.version('larkspur-chatbot')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_manifest(adapter_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write (or update, while the version is not yet registered) manifest.json atomically."""
    path = adapter_dir / MANIFEST
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(partial, path)
    return path


def read_manifest(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def loss_points(log_history: Sequence[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(int(row["step"]), float(row[key])) for row in log_history if key in row and "step" in row]


def plot_loss_curve(log_history: Sequence[dict[str, Any]], path: Path, *, title: str) -> Path | None:
    """The training (and validation) loss by step as a PNG; None when nothing was logged."""
    train = loss_points(log_history, "loss")
    if not train:
        return None
    # The object API with the Agg canvas: no pyplot global state, safe off the main thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([s for s, _ in train], [v for _, v in train], label="training loss", marker=".")
    evals = loss_points(log_history, "eval_loss")
    if evals:
        axes.plot([s for s, _ in evals], [v for _, v in evals], "o", label="validation loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
