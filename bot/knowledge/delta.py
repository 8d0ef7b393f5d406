"""Documents added or removed since the current generation was built: the journal, applied.

Adding one approved correction must not rebuild a 100k-chunk BM25 index, so new chunks live
here, scored with the same Lucene BM25 formula as bm25s and the generation's corpus statistics,
and removed chunks are masked out of the generation. The next ingestion (or `compact`) folds
all of it into a new generation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bot.knowledge.document import Chunk
from bot.knowledge.segment import Segment, top_n
from bot.knowledge.store import decode_vector
from bot.knowledge.tokens import lexical_tokens


@dataclass(frozen=True)
class Delta:
    chunks: tuple[Chunk, ...]
    embeddings: np.ndarray
    terms: tuple[Counter[str], ...]
    lengths: np.ndarray
    removed: np.ndarray | None  # rows of the segment that no longer count

    @classmethod
    def empty(cls, dim: int) -> Delta:
        return cls((), np.zeros((0, dim), dtype=np.float32), (), np.zeros(0), None)

    @property
    def removed_count(self) -> int:
        return 0 if self.removed is None else int(self.removed.sum())

    def apply(self, segment: Segment, op: dict[str, Any]) -> Delta:
        """A journal operation: `put` replaces a document's chunks, `remove` drops them."""
        delta = self.remove(segment, op["source"])
        if op["op"] == "put":
            chunks = [Chunk.from_record(r) for r in op["chunks"]]
            vectors = [decode_vector(r["embedding"]) for r in op["chunks"]]
            delta = delta.add(chunks, np.stack(vectors) if vectors else delta.embeddings[:0])
        return delta

    def add(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> Delta:
        terms = tuple(Counter(lexical_tokens(c.embed_text)) for c in chunks)
        return replace(
            self,
            chunks=self.chunks + tuple(chunks),
            embeddings=np.concatenate([self.embeddings, embeddings.astype(np.float32)]),
            terms=self.terms + terms,
            lengths=np.concatenate([self.lengths, [sum(t.values()) for t in terms]]),
        )

    def remove(self, segment: Segment, source: str) -> Delta:
        keep = [i for i, c in enumerate(self.chunks) if c.source != source]
        delta = self
        if len(keep) != len(self.chunks):
            delta = replace(
                self,
                chunks=tuple(self.chunks[i] for i in keep),
                embeddings=self.embeddings[keep],
                terms=tuple(self.terms[i] for i in keep),
                lengths=self.lengths[keep],
            )
        rows = segment.catalog().rows_by_source.get(source, []) if segment.n else []
        if rows:
            removed = np.zeros(segment.n, dtype=bool) if self.removed is None else self.removed.copy()
            removed[rows] = True
            delta = replace(delta, removed=removed)
        return delta

    def dense(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.embeddings @ query
        order = top_n(sims, n)
        return order, sims[order]

    def lexical(self, segment: Segment, terms: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.chunks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        docs = segment.n - self.removed_count + len(self.chunks)
        norm = segment.k1 * (1 - segment.b + segment.b * self.lengths / segment.avgdl)
        scores = np.zeros(len(self.chunks))
        for term in set(terms):
            tf = np.array([t.get(term, 0) for t in self.terms], dtype=np.float64)
            if not tf.any():
                continue
            term_id = segment.vocab.get(term, len(segment.doc_freq))
            in_segment = int(segment.doc_freq[term_id]) if term_id < len(segment.doc_freq) else 0
            df = int(np.count_nonzero(tf)) + in_segment
            idf = math.log(1 + (docs - df + 0.5) / (df + 0.5))
            scores += idf * tf / (tf + norm)
        order = top_n(scores, n)
        order = order[scores[order] > 0]
        return order, scores[order].astype(np.float32)
