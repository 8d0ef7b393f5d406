"""Hybrid retrieval over one consistent view of the index (a generation plus its journal).

Each retriever proposes its best `CANDIDATES` passages; reciprocal rank fusion (RRF, k=60)
combines the two rankings without having to reconcile BM25 scores with cosines. Ranks say
nothing about whether anything matched at all, so relevance is decided on cosine similarity,
in two steps (calibration in `bot.knowledge.evaluate`):

* the question: unless its best candidate reaches the embedder's `min_similarity`, nothing in
  the index is about it and the result is empty (an off-topic question gets `[]`);
* each passage: below `PASSAGE_FLOOR` times that value it is noise and is dropped. This floor is
  much lower because the right passage is often found by its words (BM25) rather than its
  meaning: on the sample wiki, one right passage in twenty is below the question-level floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bot.knowledge.delta import Delta
from bot.knowledge.document import Chunk
from bot.knowledge.segment import Segment
from bot.knowledge.store import read_journal, read_manifest

Mode = Literal["hybrid", "dense", "lexical"]
RRF_K = 60
CANDIDATES = 50
PASSAGE_FLOOR = 0.35

# A candidate is (0, row) in the generation or (1, row) in the delta.
Key = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    title: str
    source: str
    url: str | None
    text: str
    score: float  # the fused RRF score that orders results
    similarity: float  # cosine between question and passage; what the relevance floors apply to
    dense_rank: int | None = None  # 1-based rank in each retriever's list, for debugging
    lexical_rank: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    """An immutable view: searches keep the one they started with while writers swap in a new one."""

    index_dir: Path
    manifest: Mapping[str, Any] | None
    segment: Segment
    delta: Delta
    journal_offset: int = 0

    @property
    def generation(self) -> str | None:
        return None if self.manifest is None else str(self.manifest["generation"])

    @property
    def model_id(self) -> str | None:
        return None if self.manifest is None else str(self.manifest["model_id"])

    @property
    def size(self) -> int:
        return self.segment.n - self.delta.removed_count + len(self.delta.chunks)

    def sources(self) -> set[str]:
        removed = self.delta.removed
        catalog = self.segment.catalog().sources
        live = {s for i, s in enumerate(catalog) if removed is None or not removed[i]}
        return live | {c.source for c in self.delta.chunks}

    def chunk(self, key: Key) -> Chunk:
        return self.segment.chunk(key[1]) if key[0] == 0 else self.delta.chunks[key[1]]

    def live_chunks(self) -> list[Chunk]:
        """Every chunk currently searchable, generation first (used to build the next one)."""
        removed = self.delta.removed
        chunks = [c for i, c in enumerate(self.segment.all_chunks()) if removed is None or not removed[i]]
        return chunks + list(self.delta.chunks)

    def live_embeddings(self) -> np.ndarray:
        rows = np.arange(self.segment.n)
        if self.delta.removed is not None:
            rows = rows[~self.delta.removed]
        return np.concatenate([np.asarray(self.segment.embeddings[rows]), self.delta.embeddings])


def load_state(index_dir: Path, dim: int) -> State:
    manifest = read_manifest(index_dir)
    if manifest is None:
        return State(index_dir, None, Segment(None, dim), Delta.empty(dim))
    generation = str(manifest["generation"])
    segment = Segment(index_dir / generation, int(manifest["dim"]))
    return catch_up(State(index_dir, manifest, segment, Delta.empty(segment.dim)))


def catch_up(state: State) -> State:
    """Applies journal operations written since `state` was read (by any process)."""
    if state.generation is None:
        return state
    ops, offset = read_journal(state.index_dir, state.generation, state.journal_offset)
    if not ops:
        return state
    delta = state.delta
    for op in ops:
        delta = delta.apply(state.segment, op)
    return State(state.index_dir, state.manifest, state.segment, delta, offset)


def depth_for(k: int) -> int:
    return max(CANDIDATES, 2 * k)


def dense_ranking(state: State, query: np.ndarray, depth: int) -> list[tuple[Key, float]]:
    """The most similar passages and their cosines, best first."""
    rows, scores = state.segment.dense(query, depth, state.delta.removed)
    extra_rows, extra_scores = state.delta.dense(query, depth)
    return _merge(rows, scores, extra_rows, extra_scores, depth)


def lexical_ranking(state: State, terms: list[str], depth: int) -> list[Key]:
    """The best BM25 passages, best first; needs no query vector, so it can run meanwhile."""
    rows, scores = state.segment.lexical(terms, depth, state.delta.removed)
    extra_rows, extra_scores = state.delta.lexical(state.segment, terms, depth)
    return [key for key, _ in _merge(rows, scores, extra_rows, extra_scores, depth)]


def fuse(
    state: State,
    query: np.ndarray,
    dense: list[tuple[Key, float]],
    lexical: list[Key],
    k: int,
    floor: float,
) -> list[Passage]:
    """The `k` best passages by RRF; empty when the best similarity is below `floor`."""
    sims = dict(dense)
    missing = [key for key in lexical if key not in sims]
    if missing:
        sims.update(zip(missing, _similarities(state, missing, query), strict=True))
    if max(sims.values(), default=-np.inf) < floor:
        return []
    dense_rank = {key: rank for rank, (key, _) in enumerate(dense, start=1)}
    lexical_rank = {key: rank for rank, key in enumerate(lexical, start=1)}
    fused: dict[Key, float] = {}
    for ranks in (dense_rank, lexical_rank):
        for key, rank in ranks.items():
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    relevant = (key for key in fused if sims[key] >= floor * PASSAGE_FLOOR)
    best = sorted(relevant, key=lambda key: (-fused[key], -sims[key]))
    passages = []
    for key in best[:k]:
        chunk = state.chunk(key)
        passages.append(
            Passage(
                id=chunk.id,
                title=chunk.title,
                source=chunk.source,
                url=chunk.url,
                text=chunk.text,
                score=fused[key],
                similarity=sims[key],
                dense_rank=dense_rank.get(key),
                lexical_rank=lexical_rank.get(key),
                metadata=chunk.metadata,
            )
        )
    return passages


def search_state(
    state: State, query: np.ndarray, terms: list[str], k: int, mode: Mode, floor: float
) -> list[Passage]:
    """Both retrievers one after the other, then fusion."""
    depth = depth_for(k)
    dense = dense_ranking(state, query, depth) if mode != "lexical" else []
    lexical = lexical_ranking(state, terms, depth) if mode != "dense" else []
    return fuse(state, query, dense, lexical, k, floor)


def _merge(
    rows: np.ndarray, scores: np.ndarray, extra_rows: np.ndarray, extra_scores: np.ndarray, n: int
) -> list[tuple[Key, float]]:
    """One ranking from the generation's and the delta's, best first."""
    keys = [(0, int(r)) for r in rows] + [(1, int(r)) for r in extra_rows]
    values = np.concatenate([scores, extra_scores]).astype(np.float64)
    return [(keys[i], float(values[i])) for i in np.argsort(-values, kind="stable")[:n]]


def _similarities(state: State, keys: list[Key], query: np.ndarray) -> list[float]:
    main = np.array([row for part, row in keys if part == 0], dtype=np.int64)
    main_sims = iter(state.segment.similarity(main, query).tolist())
    delta = state.delta.embeddings
    return [next(main_sims) if part == 0 else float(delta[row] @ query) for part, row in keys]
