"""Ingestion: files and folders in, an up-to-date index out, doing only the work that changed.

Chunks are matched by id (file, heading path, position) and compared by content hash: an
unchanged chunk keeps its embedding, a changed one is embedded again, and chunks of files that
disappeared from an ingested folder (or sections that disappeared from a file) are removed.
Only chunks under the paths given are considered for removal; everything else in the index,
including documents added through the API, is kept. A file that cannot be read is reported and
keeps whatever it had in the index before, so a transient error does not delete knowledge.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bot.knowledge.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS, chunk_document
from bot.knowledge.document import Chunk
from bot.knowledge.embedder import Embedder
from bot.knowledge.errors import UnreadableDocument
from bot.knowledge.index import State, load_state
from bot.knowledge.readers import is_supported, read_document
from bot.knowledge.store import write_generation, writer_lock

# Larger batches let sentence-transformers sort more texts by length: less padding, ~25% faster.
EMBED_BATCH = 256


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    files_read: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0  # vectors computed; every other chunk reused its stored one
    chunks: int = 0  # chunks in the index afterwards
    seconds: float = 0.0
    # Ids the chunks had before, of every file whose content changed or that was removed: an answer
    # that cited one of them rests on a page that is no longer what it was.
    changed_ids: set[str] = field(default_factory=set)

    def summary(self) -> str:
        lines = [
            f"Read {self.files_read} files in {self.seconds:.1f}s: {self.added} chunks added, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.removed} removed "
            f"({self.chunks} in the index, {self.embedded} embedded)."
        ]
        lines += [f"Skipped {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


@dataclass(frozen=True)
class _File:
    path: Path  # absolute
    shown: str  # as the user would write it, for the report
    source: str


def discover(roots: Iterable[str | Path], report: IngestReport) -> tuple[list[_File], list[Path]]:
    """Supported files under each root (hidden ones skipped), and the roots that exist."""
    files: dict[Path, _File] = {}
    scopes: list[Path] = []
    for given in roots:
        root = Path(given).expanduser()
        absolute = root.absolute()
        if absolute.is_file():
            scopes.append(absolute)
            if not is_supported(absolute):
                report.skipped.append(SkippedFile(str(root), f"unsupported file type {absolute.suffix!r}"))
                continue
            files.setdefault(absolute, _File(absolute, str(root), absolute.name))
        elif absolute.is_dir():
            scopes.append(absolute)
            for folder, dirs, names in os.walk(absolute):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    path = Path(folder) / name
                    if name.startswith(".") or not is_supported(path):
                        continue
                    relative = path.relative_to(absolute)
                    files.setdefault(path, _File(path, str(root / relative), relative.as_posix()))
        else:
            report.skipped.append(SkippedFile(str(root), "no such file or directory"))
    return list(files.values()), scopes


def _in_scope(path: str, scopes: list[Path]) -> bool:
    return bool(path) and any(path == str(s) or path.startswith(str(s) + os.sep) for s in scopes)


def ingest(
    paths: Iterable[str | Path],
    index_dir: str | Path,
    embedder: Embedder,
    progress: bool = True,
    *,
    max_tokens: int | None = None,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> IngestReport:
    """Brings the index in `index_dir` up to date with `paths` (files and folders)."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    budget = max_tokens or min(DEFAULT_MAX_TOKENS, embedder.max_tokens)
    report = IngestReport()
    files, scopes = discover(paths, report)

    new: list[Chunk] = []
    unreadable: set[str] = set()
    for file in tqdm(files, desc="Reading", unit="file", disable=not progress):
        try:
            document = read_document(file.path, file.source)
        except UnreadableDocument as exc:
            report.skipped.append(SkippedFile(file.shown, str(exc)))
            unreadable.add(str(file.path))
            continue
        report.files_read += 1
        new += chunk_document(
            document,
            key=str(file.path),
            path=str(file.path),
            max_tokens=budget,
            overlap_tokens=overlap_tokens,
            count_tokens=embedder.count_tokens,
        )

    # Embedding is the slow part and runs without the writer lock, so the bot can still record
    # corrections meanwhile; under the lock the plan is redone against the index as it is then,
    # which only embeds what was added in between.
    vectors: dict[str, np.ndarray] = {}
    before = load_state(index_dir, embedder.dim)
    existing = before.live_chunks()
    final, _ = _plan(existing, new, scopes, unreadable)
    _embed_missing(final, _stored_rows(before, existing, embedder), vectors, embedder, progress)
    with writer_lock(index_dir):
        state = load_state(index_dir, embedder.dim)
        existing = state.live_chunks()
        final, counts = _plan(existing, new, scopes, unreadable)
        stored = _stored_rows(state, existing, embedder)
        _embed_missing(final, stored, vectors, embedder, progress)
        report.added, report.updated, report.unchanged, report.removed = counts
        report.changed_ids = _changed_ids(existing, new, scopes, unreadable)
        changed = any(counts[i] for i in (0, 1, 3)) or state.model_id != embedder.model_id
        if changed or state.delta.chunks or state.delta.removed_count:
            matrix = _assemble(final, state, stored, vectors, embedder.dim)
            write_generation(index_dir, final, matrix, embedder.model_id, state.generation)
        report.chunks = len(final)
    report.embedded = len(vectors)
    report.seconds = time.perf_counter() - started
    return report


def _plan(
    existing: list[Chunk], new: list[Chunk], scopes: list[Path], unreadable: set[str]
) -> tuple[list[Chunk], tuple[int, int, int, int]]:
    """The next generation's chunks, and how many were (added, updated, unchanged, removed)."""
    old_hash = {c.id: c.content_hash for c in existing}
    produced = {c.id for c in new}
    kept = [c for c in existing if not _in_scope(c.path, scopes) or c.path in unreadable]
    kept_ids = {c.id for c in kept}
    removed = sum(1 for c in existing if c.id not in kept_ids and c.id not in produced)
    added = sum(1 for c in new if c.id not in old_hash)
    unchanged = sum(1 for c in new if old_hash.get(c.id) == c.content_hash)
    return kept + new, (added, len(new) - added - unchanged, unchanged, removed)


def _changed_ids(
    existing: list[Chunk], new: list[Chunk], scopes: list[Path], unreadable: set[str]
) -> set[str]:
    before: dict[str, set[tuple[str, str]]] = {}
    for chunk in existing:
        if _in_scope(chunk.path, scopes) and chunk.path not in unreadable:
            before.setdefault(chunk.path, set()).add((chunk.id, chunk.content_hash))
    after: dict[str, set[tuple[str, str]]] = {}
    for chunk in new:
        after.setdefault(chunk.path, set()).add((chunk.id, chunk.content_hash))
    changed = {path for path, chunks in before.items() if after.get(path, set()) != chunks}
    return {chunk.id for chunk in existing if chunk.path in changed}


def _stored_rows(state: State, existing: list[Chunk], embedder: Embedder) -> dict[str, int]:
    """Rows of the live vectors by content hash; none when they come from another model."""
    if state.model_id != embedder.model_id:
        return {}
    return {c.content_hash: row for row, c in enumerate(existing)}


def _embed_missing(
    final: list[Chunk],
    stored: dict[str, int],
    vectors: dict[str, np.ndarray],
    embedder: Embedder,
    progress: bool,
) -> None:
    """Embeds each distinct text that has no stored vector and was not embedded by this run."""
    known = stored.keys() | vectors.keys()
    missing = list({c.content_hash: c for c in final if c.content_hash not in known}.values())
    with tqdm(total=len(missing), desc="Embedding", unit="chunk", disable=not progress or not missing) as bar:
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            for chunk, vector in zip(batch, embedder.embed([c.embed_text for c in batch]), strict=True):
                vectors[chunk.content_hash] = vector
            bar.update(len(batch))


def _assemble(
    final: list[Chunk], state: State, stored: dict[str, int], vectors: dict[str, np.ndarray], dim: int
) -> np.ndarray:
    live = state.live_embeddings() if stored else None
    matrix = np.zeros((len(final), dim), dtype=np.float32)
    for row, chunk in enumerate(final):
        if live is not None and chunk.content_hash in stored:
            matrix[row] = live[stored[chunk.content_hash]]
        else:
            matrix[row] = vectors[chunk.content_hash]
    return matrix
