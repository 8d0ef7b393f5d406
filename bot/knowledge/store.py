"""The index on disk: immutable generations, a manifest naming the live one, and a journal.

```
index_dir/
  manifest.json        {"format", "generation", "model_id", "dim", "chunks", "built_at"}
  .lock                writers hold an exclusive lock on it (flock) while they change anything
  g000007/             one generation, never modified once the manifest points at it
    chunks.jsonl       one chunk record per row
    catalog.json       ids, sources, paths and content hashes of all rows (for writers)
    offsets.npy        byte offset of every row in chunks.jsonl, so a search reads only its hits
    embeddings.npy     float32 (rows, dim), unit length; opened with mmap
    codes.npy          uint64 (words, rows): sign bits of the centred embeddings (coarse search)
    center.npy         the mean embedding those bits are taken around
    bm25/              the bm25s index (saved arrays are mmapped too)
    lexical.json       BM25 corpus statistics that documents added later are scored with
    journal.jsonl      documents added or removed since the generation was built (append-only)
```

A new generation is written to a temporary folder, renamed into place, and only then named by
the manifest (an atomic `os.replace`), so a reader in another process never sees half an index;
it keeps reading its old generation (open files and mmaps survive the deletion) until it reloads.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from bot.knowledge.document import Chunk
from bot.knowledge.errors import IndexUnusable
from bot.knowledge.tokens import lexical_tokens

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writing process at a time is up to the user
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
BM25_K1 = 1.2
BM25_B = 0.75

_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Serialises writers: threads of this process, then processes through flock."""
    index_dir.mkdir(parents=True, exist_ok=True)
    key = index_dir.resolve()
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(key, threading.Lock())
    with lock, open(index_dir / ".lock", "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((index_dir / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IndexUnusable(
            f"The index manifest in {index_dir} is unreadable ({exc}); ingest again."
        ) from exc
    if manifest.get("format") != FORMAT:
        raise IndexUnusable(
            f"The index in {index_dir} has format {manifest.get('format')}, this version reads {FORMAT}; "
            "delete the folder and ingest again."
        )
    return manifest


def binary_codes(embeddings: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Sign bits of the centred vectors, packed into uint64 words and stored word-major.

    Word-major (words, rows) lets the coarse search XOR one contiguous row of words at a time.
    """
    bits = np.packbits(embeddings - center > 0, axis=1)
    pad = (-bits.shape[1]) % 8
    if pad:
        bits = np.pad(bits, ((0, 0), (0, pad)))
    return np.ascontiguousarray(bits.view(np.uint64).T)


def write_generation(
    index_dir: Path,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
    model_id: str,
    previous: str | None,
) -> str:
    """Writes a complete generation and points the manifest at it. Call under `writer_lock`."""
    number = int(previous[1:]) + 1 if previous else 1
    name = f"g{number:06d}"
    final = index_dir / name
    tmp = index_dir / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    offsets = [0]
    with open(tmp / "chunks.jsonl", "wb") as out:
        for chunk in chunks:
            line = json.dumps(chunk.to_record(), ensure_ascii=False).encode("utf-8") + b"\n"
            out.write(line)
            offsets.append(offsets[-1] + len(line))
    np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    # What writers need to know about every row, small enough to load in a blink.
    catalog = {
        "ids": [c.id for c in chunks],
        "sources": [c.source for c in chunks],
        "paths": [c.path for c in chunks],
        "hashes": [c.content_hash for c in chunks],
    }
    (tmp / "catalog.json").write_text(json.dumps(catalog, ensure_ascii=False), "utf-8")
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    np.save(tmp / "embeddings.npy", embeddings)
    center = embeddings.mean(axis=0) if len(embeddings) else np.zeros(embeddings.shape[1], np.float32)
    np.save(tmp / "center.npy", center.astype(np.float32))
    np.save(tmp / "codes.npy", binary_codes(embeddings, center))

    tokens = [lexical_tokens(chunk.embed_text) for chunk in chunks]
    lengths = [len(t) for t in tokens]
    stats = {
        "docs": len(chunks),
        "avgdl": float(np.mean(lengths)) if lengths else 1.0,
        "k1": BM25_K1,
        "b": BM25_B,
    }
    (tmp / "lexical.json").write_text(json.dumps(stats), "utf-8")
    if any(lengths):
        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
        retriever.index(tokens, show_progress=False)
        retriever.save(str(tmp / "bm25"), show_progress=False)
    (tmp / JOURNAL).touch()

    os.replace(tmp, final)
    manifest = {
        "format": FORMAT,
        "generation": name,
        "model_id": model_id,
        "dim": int(embeddings.shape[1]),
        "chunks": len(chunks),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp_manifest = index_dir / f"{MANIFEST}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2), "utf-8")
    os.replace(tmp_manifest, index_dir / MANIFEST)
    _prune(index_dir, keep=name)
    return name


def _prune(index_dir: Path, keep: str) -> None:
    for entry in index_dir.iterdir():
        if entry.is_dir() and entry.name.startswith("g") and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def append_journal(index_dir: Path, generation: str, op: dict[str, Any]) -> None:
    """One operation as one line, flushed to disk before the caller reports success."""
    line = json.dumps(op, ensure_ascii=False).encode("utf-8") + b"\n"
    with open(index_dir / generation / JOURNAL, "ab") as out:
        out.write(line)
        out.flush()
        os.fsync(out.fileno())


def read_journal(index_dir: Path, generation: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete operations from `offset` on, and the offset after the last complete one."""
    path = index_dir / generation / JOURNAL
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    ops = []
    end = data.rfind(b"\n") + 1  # a line still being written is left for next time
    for line in data[:end].splitlines():
        if line.strip():
            ops.append(json.loads(line))
    return ops, offset + end
