"""One generation of the index, loaded read-only: the two retrievers over its rows.

Dense search is exact up to `EXACT_LIMIT` rows. Above that, reading every float32 vector costs
more than the whole latency budget on a small machine (100k x 384 floats is 150 MB per query),
so a coarse pass ranks rows by the Hamming distance of 384-bit sign codes (5 MB) and only the
best `RESCORE` candidates are scored exactly. Similarities returned are always exact cosines.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from bot.knowledge.document import Chunk
from bot.knowledge.errors import IndexUnusable
from bot.knowledge.store import binary_codes

EXACT_LIMIT = 5_000
RESCORE = 1024


@dataclass(frozen=True)
class Catalog:
    ids: list[str]
    sources: list[str]
    paths: list[str]
    hashes: list[str]

    @cached_property
    def rows_by_source(self) -> dict[str, list[int]]:
        rows: dict[str, list[int]] = {}
        for row, source in enumerate(self.sources):
            rows.setdefault(source, []).append(row)
        return rows


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` highest scores, best first."""
    if n <= 0 or len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    if n < len(scores):
        part = np.argpartition(-scores, n - 1)[:n]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


class Segment:
    def __init__(self, directory: Path | None, dim: int) -> None:
        self.directory = directory
        self.dim = dim
        self.bm25: bm25s.BM25 | None = None
        self.vocab: dict[str, int] = {}
        self.avgdl = 1.0
        self.k1 = 1.2
        self.b = 0.75
        self._catalog: Catalog | None = None
        self._postings: tuple[np.ndarray, ...] = ()
        self._catalog_lock = threading.Lock()
        if directory is None:
            self.n = 0
            self.embeddings = np.zeros((0, dim), dtype=np.float32)
            self.offsets = np.zeros(1, dtype=np.int64)
            self.codes = np.zeros((0, 0), dtype=np.uint64)
            self.center = np.zeros(dim, dtype=np.float32)
            self._fd = -1
            return
        try:
            self.offsets = np.load(directory / "offsets.npy")
            self.embeddings = np.asarray(np.load(directory / "embeddings.npy", mmap_mode="r"))
            self.codes = np.load(directory / "codes.npy")
            self.center = np.load(directory / "center.npy")
            stats = json.loads((directory / "lexical.json").read_text("utf-8"))
            if (directory / "bm25").is_dir():
                self.bm25 = bm25s.BM25.load(str(directory / "bm25"), mmap=True, show_progress=False)
                self.vocab = self.bm25.vocab_dict
                # Plain ndarray views of the mmaps: slicing a np.memmap costs ~30 us of Python each
                # time, and a query slices two arrays per term.
                matrix = self.bm25.scores
                self._postings = tuple(np.asarray(matrix[name]) for name in ("indptr", "indices", "data"))
            self._fd = os.open(directory / "chunks.jsonl", os.O_RDONLY)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexUnusable(
                f"The index generation {directory} is damaged ({exc}); ingest again."
            ) from exc
        # Searches in flight may still hold this segment after a reload; close the file with it.
        weakref.finalize(self, os.close, self._fd)
        self.n = len(self.offsets) - 1
        self.avgdl, self.k1, self.b = float(stats["avgdl"]), float(stats["k1"]), float(stats["b"])

    @cached_property
    def doc_freq(self) -> np.ndarray:
        """Documents containing each term: one CSC column per term, one entry per document."""
        if not self._postings:
            return np.zeros(0, dtype=np.int64)
        return np.diff(self._postings[0])

    def record(self, row: int) -> dict[str, Any]:
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        data: dict[str, Any] = json.loads(os.pread(self._fd, end - start, start))
        return data

    def chunk(self, row: int) -> Chunk:
        return Chunk.from_record(self.record(row))

    def all_chunks(self) -> list[Chunk]:
        if self.directory is None:
            return []
        with open(self.directory / "chunks.jsonl", encoding="utf-8") as handle:
            return [Chunk.from_record(json.loads(line)) for line in handle]

    def catalog(self) -> Catalog:
        with self._catalog_lock:
            if self._catalog is None:
                if self.directory is None:
                    self._catalog = Catalog([], [], [], [])
                else:
                    data = json.loads((self.directory / "catalog.json").read_text("utf-8"))
                    self._catalog = Catalog(data["ids"], data["sources"], data["paths"], data["hashes"])
            return self._catalog

    def dense(self, query: np.ndarray, n: int, removed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The `n` rows most similar to a unit query vector, and their cosine similarities."""
        if self.n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.n <= EXACT_LIMIT:
            candidates = None
            sims = self.embeddings @ query
        else:
            candidates = self._coarse(query, max(RESCORE, 4 * n))
            if removed is not None:
                candidates = candidates[~removed[candidates]]
            candidates.sort()  # reading rows in file order is kinder to the page cache
            sims = self.embeddings[candidates] @ query
        if removed is not None and candidates is None:
            sims[removed] = -np.inf
        order = top_n(sims, n)
        order = order[np.isfinite(sims[order])]
        rows = order if candidates is None else candidates[order]
        return rows, sims[order]

    def _coarse(self, query: np.ndarray, n: int) -> np.ndarray:
        """Rows whose codes are nearest in Hamming distance: at least `n` of them (ties included)."""
        if n >= self.n:
            return np.arange(self.n)
        bits = binary_codes(query[None, :], self.center)[:, 0]
        distance = np.bitwise_count(self.codes[0] ^ bits[0]).astype(np.uint16)
        for word in range(1, len(bits)):
            distance += np.bitwise_count(self.codes[word] ^ bits[word])
        # Distances are small integers: a histogram finds the cut-off faster than a partition.
        cutoff = int(np.searchsorted(np.cumsum(np.bincount(distance)), n))
        rows = np.flatnonzero(distance <= cutoff)
        if len(rows) > 2 * n:  # many ties at the cut-off: keep the rescoring cost bounded
            rows = rows[np.argpartition(distance[rows], n - 1)[:n]]
        return rows

    def similarity(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.embeddings[rows] @ query)

    def lexical(self, terms: list[str], n: int, removed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best BM25 rows with a positive score, and their scores."""
        ids = sorted({self.vocab[t] for t in terms if t in self.vocab})
        if not self._postings or not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        indptr, indices, data = self._postings
        spans = [(int(indptr[i]), int(indptr[i + 1])) for i in ids]
        # bincount over the matched postings is several times faster than bm25s' np.add.at loop.
        docs = np.concatenate([indices[s:e] for s, e in spans])
        weights = np.concatenate([data[s:e] for s, e in spans])
        scores = np.bincount(docs, weights=weights, minlength=self.n)
        if removed is not None:
            scores[removed] = 0.0
        matched = np.flatnonzero(scores > 0)  # usually a small share of the rows
        order = matched[top_n(scores[matched], n)]
        return order, scores[order].astype(np.float32)
