"""The knowledge base the rest of the bot uses: search, ingest, add or remove one document.

    kb = KnowledgeBase.open("data/index", SentenceTransformerEmbedder())
    kb.ingest(["docs/"])
    kb.add_document("Q: ...\\nA: ...", source="correction:42", title="Correction: ...")
    passages = kb.search("how many vacation days do I get?", k=5)

Searches run concurrently from any number of threads against an immutable snapshot; writers
(this process's threads or other processes, such as `chatbot ingest`) are serialised by a file
lock, and a running bot picks up their changes within `reload_interval` seconds.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bot.knowledge.chunking import DEFAULT_MAX_TOKENS, chunk_document
from bot.knowledge.embedder import Embedder
from bot.knowledge.errors import EmbedderMismatch
from bot.knowledge.index import (
    Key,
    Mode,
    Passage,
    State,
    catch_up,
    dense_ranking,
    depth_for,
    fuse,
    lexical_ranking,
    load_state,
)
from bot.knowledge.ingest import IngestReport, ingest
from bot.knowledge.readers import parse_text
from bot.knowledge.store import (
    JOURNAL,
    MANIFEST,
    append_journal,
    encode_vector,
    read_manifest,
    write_generation,
    writer_lock,
)
from bot.knowledge.tokens import lexical_tokens


@dataclass(frozen=True)
class KnowledgeStats:
    chunks: int
    documents: int
    pending: int  # chunks added or removed since the last full build (folded in by `compact`)
    generation: str | None
    model_id: str | None
    built_at: str | None
    index_dir: str
    size_bytes: int


class KnowledgeBase:
    def __init__(
        self,
        index_dir: str | Path,
        embedder: Embedder,
        *,
        min_similarity: float | None = None,
        reload_interval: float = 2.0,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.min_similarity = embedder.min_similarity if min_similarity is None else min_similarity
        self.reload_interval = reload_interval
        self._lock = threading.Lock()  # guards swapping the snapshot, not searches
        self._state = load_state(self.index_dir, embedder.dim)
        self._stamp = self._disk_stamp(self._state)
        self._checked = time.monotonic()
        # BM25 needs no query vector, so it runs here while the question is being embedded.
        self._lexical_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kb-bm25")

    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        embedder: Embedder,
        *,
        min_similarity: float | None = None,
        reload_interval: float = 2.0,
    ) -> KnowledgeBase:
        """Opens the index in `index_dir`, or an empty one that the first write creates.

        Vectors and BM25 arrays are memory-mapped, so opening takes milliseconds at any size.
        `min_similarity` overrides the embedder's calibrated relevance floor; `reload_interval`
        is how often (seconds) searches check for changes written elsewhere, negative for never.
        """
        return cls(index_dir, embedder, min_similarity=min_similarity, reload_interval=reload_interval)

    # -- reading -----------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 5, *, mode: Mode = "hybrid", min_similarity: float | None = None
    ) -> list[Passage]:
        """The `k` most relevant passages, best first; empty when nothing is relevant enough."""
        state = self._current()
        if not query.strip() or k <= 0 or state.size == 0:
            return []
        self._check_model(state)
        depth = depth_for(k)
        lexical: Future[list[Key]] | None = None
        if mode != "dense":
            lexical = self._lexical_pool.submit(lexical_ranking, state, lexical_tokens(query), depth)
        vector = np.ascontiguousarray(self.embedder.embed([query])[0], dtype=np.float32)
        dense = dense_ranking(state, vector, depth) if mode != "lexical" else []
        floor = self.min_similarity if min_similarity is None else min_similarity
        return fuse(state, vector, dense, lexical.result() if lexical else [], k, floor)

    def stats(self) -> KnowledgeStats:
        state = self._current()
        directory = self.index_dir / state.generation if state.generation else None
        size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) if directory else 0
        return KnowledgeStats(
            chunks=state.size,
            documents=len(state.sources()),
            pending=len(state.delta.chunks) + state.delta.removed_count,
            generation=state.generation,
            model_id=state.model_id,
            built_at=None if state.manifest is None else state.manifest.get("built_at"),
            index_dir=str(self.index_dir),
            size_bytes=size,
        )

    # -- writing -----------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], *, progress: bool = True) -> IngestReport:
        report = ingest(paths, self.index_dir, self.embedder, progress)
        self.refresh(force=True)
        return report

    def add_document(
        self,
        text: str,
        *,
        source: str,
        title: str,
        url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        fmt: str = "markdown",
    ) -> list[str]:
        """Adds (or replaces) one document that is not a file, such as an approved correction.

        Cheap at any index size: the chunks are embedded and appended to the journal; the
        generation is not rebuilt. Returns the new chunk ids.
        """
        document = parse_text(text, source, title, fmt)
        document = replace(document, url=url, metadata={**document.metadata, **(metadata or {})})
        budget = min(DEFAULT_MAX_TOKENS, self.embedder.max_tokens)
        chunks = chunk_document(
            document, key=source, max_tokens=budget, count_tokens=self.embedder.count_tokens
        )
        vectors = self.embedder.embed([c.embed_text for c in chunks])
        records = [
            {**c.to_record(), "embedding": encode_vector(v)} for c, v in zip(chunks, vectors, strict=True)
        ]
        self._write({"op": "put", "source": source, "chunks": records})
        return [c.id for c in chunks]

    def remove_document(self, source: str) -> int:
        """Removes every chunk whose source is `source`; returns how many there were."""
        before = self._current().size
        after = self._write({"op": "remove", "source": source}).size
        return before - after

    def compact(self) -> None:
        """Folds documents added or removed since the last build into a new generation."""
        with writer_lock(self.index_dir):
            state = self._fresh()
            if state.delta.chunks or state.delta.removed_count:
                self._check_model(state)
                write_generation(
                    self.index_dir,
                    state.live_chunks(),
                    state.live_embeddings(),
                    self.embedder.model_id,
                    state.generation,
                )
                state = load_state(self.index_dir, self.embedder.dim)
            self._swap(state)

    def refresh(self, *, force: bool = False) -> bool:
        """Picks up what other processes wrote; returns whether anything changed."""
        with self._lock:
            self._checked = time.monotonic()
            if not force and self._disk_stamp(self._state) == self._stamp:
                return False
            state = self._fresh()
            changed = state is not self._state
            self._state, self._stamp = state, self._disk_stamp(state)
            return changed

    def close(self) -> None:
        self._lexical_pool.shutdown(wait=False)

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _current(self) -> State:
        if self.reload_interval >= 0 and time.monotonic() - self._checked >= self.reload_interval:
            self.refresh()
        return self._state

    def _fresh(self) -> State:
        """The index as it is on disk now, reusing the loaded generation when it is still live."""
        state = self._state
        manifest_now = read_manifest(self.index_dir)
        if manifest_now is None or state.generation != manifest_now["generation"]:
            return load_state(self.index_dir, self.embedder.dim)
        return catch_up(state)

    def _write(self, op: dict[str, Any]) -> State:
        with writer_lock(self.index_dir):
            state = self._fresh()
            if state.generation is None or (state.size == 0 and state.model_id != self.embedder.model_id):
                # The journal belongs to a generation; an empty index gets an empty one first.
                empty = np.zeros((0, self.embedder.dim), dtype=np.float32)
                write_generation(self.index_dir, [], empty, self.embedder.model_id, state.generation)
                state = load_state(self.index_dir, self.embedder.dim)
            self._check_model(state)
            assert state.generation is not None
            append_journal(self.index_dir, state.generation, op)
            state = catch_up(state)
            self._swap(state)
            return state

    def _swap(self, state: State) -> None:
        with self._lock:
            self._state, self._stamp = state, self._disk_stamp(state)

    def _check_model(self, state: State) -> None:
        if state.model_id is not None and state.model_id != self.embedder.model_id:
            raise EmbedderMismatch(
                f"The index in {self.index_dir} was built with the embedding model {state.model_id}, "
                f"but {self.embedder.model_id} is configured; run `chatbot ingest` to embed it again."
            )

    def _disk_stamp(self, state: State) -> tuple[int, int, int]:
        """Changes whenever a writer replaces the manifest or appends to the journal."""
        try:
            manifest = os.stat(self.index_dir / MANIFEST)
        except FileNotFoundError:
            return (0, 0, 0)
        journal_size = 0
        if state.generation:
            with contextlib.suppress(FileNotFoundError):
                journal_size = os.stat(self.index_dir / state.generation / JOURNAL).st_size
        return (manifest.st_mtime_ns, manifest.st_ino, journal_size)
