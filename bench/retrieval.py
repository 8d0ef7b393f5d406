"""Retrieval benchmark: recall on the sample wiki, ingestion throughput, and query latency at
1k, 10k and 100k chunks, query embedding included.

    .venv/bin/python -m bench.retrieval                 # everything, ~10 minutes on 2 cores
    .venv/bin/python -m bench.retrieval --sizes 1000    # a quick run

Prints a summary and writes bench/results/retrieval.json. The latency corpora are synthetic:
the sample wiki's chunks repeated with a share of their words replaced by words drawn from a
large made-up vocabulary (so BM25 posting lists and the vocabulary grow as in a real corpus), and
embeddings made by mixing each chunk's real vector with another chunk's and some noise instead
of running the model 100,000 times. Queries are the sample questions, each asked once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.knowledge import Chunk, KnowledgeBase, SentenceTransformerEmbedder
from bot.knowledge.embedder import Embedder
from bot.knowledge.evaluate import SAMPLE_DOCS, calibrate, load_questions, recall
from bot.knowledge.index import load_state, search_state
from bot.knowledge.store import write_generation
from bot.knowledge.tokens import lexical_tokens

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "retrieval.json"


@dataclass
class Config:
    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    # Words replaced in each synthetic chunk, and the size of the vocabulary they come from.
    replace_share: float = 0.3
    synthetic_vocabulary: int = 50_000
    # Torch threads: ingestion embeds batches with two; a single query is embedded with one.
    ingest_threads: int = 2
    query_threads: int = 1
    # The machine is shared: each size is measured in several rounds, each round's load noted.
    rounds: int = 3
    seed: int = 7


def machine() -> dict[str, Any]:
    import bm25s
    import torch

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "bm25s": bm25s.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(ordered, 50)), 2),
        "p95_ms": round(float(np.percentile(ordered, 95)), 2),
        "p99_ms": round(float(np.percentile(ordered, 99)), 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def measure_ingestion(embedder: SentenceTransformerEmbedder, index_dir: Path) -> dict[str, Any]:
    kb = KnowledgeBase.open(index_dir, embedder)
    first = kb.ingest([SAMPLE_DOCS], progress=False)
    again = kb.ingest([SAMPLE_DOCS], progress=False)
    return {
        "files": first.files_read,
        "chunks": first.chunks,
        "seconds": round(first.seconds, 2),
        "chunks_per_second": round(first.chunks / first.seconds, 1),
        "reingest_unchanged_seconds": round(again.seconds, 2),
        "reingest_embedded": again.embedded,
    }


def measure_quality(kb: KnowledgeBase) -> dict[str, Any]:
    calibration = calibrate(kb, load_questions(splits=("train", "validation")))
    test = load_questions(splits=("test",))
    figures: dict[str, Any] = {"floor_in_force": kb.min_similarity, "calibration": calibration.to_dict()}
    for mode in ("hybrid", "dense", "lexical"):
        figures[mode] = {
            field: asdict(recall(kb, test, field=field, mode=mode)) for field in ("question", "reworded")
        }
    return figures


def synthetic_corpus(
    chunks: list[Chunk], vectors: np.ndarray, size: int, cfg: Config
) -> tuple[list[Chunk], np.ndarray]:
    rng = random.Random(cfg.seed)
    nrng = np.random.default_rng(cfg.seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = [
        "".join(rng.choices(letters, k=rng.randint(4, 10))) for _ in range(cfg.synthetic_vocabulary)
    ]
    out: list[Chunk] = []
    base = np.empty(size, dtype=np.int64)
    for i in range(size):
        j = i % len(chunks)
        base[i] = j
        words = chunks[j].text.split()
        for w in range(len(words)):
            if rng.random() < cfg.replace_share:
                words[w] = rng.choice(vocabulary)
        source = f"synthetic/{i // 12:06d}.md"
        out.append(
            Chunk(
                id=f"s{i:07d}",
                source=source,
                title=f"{chunks[j].title} ({i // len(chunks)})",
                text=" ".join(words),
                path=source,
            )
        )
    partner = nrng.integers(0, len(chunks), size)
    noise = nrng.standard_normal((size, vectors.shape[1])).astype(np.float32)
    mixed = 0.75 * vectors[base] + 0.25 * vectors[partner] + 0.04 * noise
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return out, mixed.astype(np.float32)


def measure_latency(
    embedder: Embedder, chunks: list[Chunk], vectors: np.ndarray, size: int, cfg: Config, queries: list[str]
) -> dict[str, Any]:
    corpus, matrix = synthetic_corpus(chunks, vectors, size, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp)
        started = time.perf_counter()
        write_generation(index_dir, corpus, matrix, embedder.model_id, None)
        build_s = time.perf_counter() - started
        del corpus, matrix
        started = time.perf_counter()
        kb = KnowledgeBase.open(index_dir, embedder, reload_interval=-1)
        open_s = time.perf_counter() - started
        for query in queries[:10]:  # warm the page cache and lazy imports
            kb.search(query)
        state = load_state(index_dir, embedder.dim)
        # How much of the exact dense top 10 the coarse (binary code) pass keeps.
        overlap = []
        for query in queries[:100]:
            vector = embedder.embed([query])[0]
            exact = set(np.argsort(-(np.asarray(state.segment.embeddings) @ vector))[:10].tolist())
            found = set(state.segment.dense(vector, 10, None)[0].tolist())
            overlap.append(len(exact & found) / 10)
        total, embed_only, retrieve_only = [], [], []
        rounds = []
        for round_number in range(cfg.rounds):
            order = random.Random(cfg.seed + round_number).sample(queries, len(queries))
            this_round = []
            for query in order:
                t0 = time.perf_counter()
                kb.search(query, k=5)
                t1 = time.perf_counter()
                vector = embedder.embed([query])[0]
                t2 = time.perf_counter()
                search_state(state, vector, lexical_tokens(query), 5, "hybrid", kb.min_similarity)
                t3 = time.perf_counter()
                this_round.append((t1 - t0) * 1000)
                embed_only.append((t2 - t1) * 1000)
                retrieve_only.append((t3 - t2) * 1000)
            total += this_round
            rounds.append({**percentiles(this_round), "load_average_1min": round(os.getloadavg()[0], 2)})
        kb.close()
        return {
            "chunks": size,
            "queries_per_round": len(queries),
            "build_seconds": round(build_s, 1),
            "open_seconds": round(open_s, 3),
            "search": percentiles(total),
            "search_rounds": rounds,
            "search_best_round_p95_ms": min(r["p95_ms"] for r in rounds),
            "embedding_only": percentiles(embed_only),
            "retrieval_only": percentiles(retrieve_only),
            "dense_top10_overlap_with_exact": round(statistics.fmean(overlap), 4),
        }


def main(cfg: Config) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "settings": asdict(cfg)}
    embedder = SentenceTransformerEmbedder(num_threads=cfg.ingest_threads, query_threads=cfg.query_threads)
    result["settings"]["embedder"] = embedder.model_id
    with tempfile.TemporaryDirectory() as tmp:
        print("Ingesting the sample wiki...", flush=True)
        result["ingestion"] = measure_ingestion(embedder, Path(tmp))
        print(json.dumps(result["ingestion"]), flush=True)
        kb = KnowledgeBase.open(tmp, embedder)
        print("Recall on the test split...", flush=True)
        result["quality"] = measure_quality(kb)
        print(json.dumps(result["quality"]["hybrid"]), flush=True)
        state = load_state(Path(tmp), embedder.dim)
        chunks = [state.segment.chunk(row) for row in range(state.segment.n)]
        vectors = np.asarray(state.segment.embeddings)
    questions = load_questions()
    queries = [q["question"] for q in questions] + [q["reworded"] for q in questions]
    result["latency"] = []
    result["latency_corpus"] = (
        "synthetic: sample chunks repeated with "
        f"{cfg.replace_share:.0%} of words replaced from a {cfg.synthetic_vocabulary}-word made-up "
        "vocabulary; embeddings are perturbed real ones (0.75 own + 0.25 another chunk's + noise), "
        "not model outputs. Query embedding is real and included in `search`."
    )
    for size in cfg.sizes:
        print(f"Latency at {size} chunks...", flush=True)
        figures = measure_latency(embedder, chunks, vectors, size, cfg, queries)
        print(json.dumps(figures), flush=True)
        result["latency"].append(figures)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(f"Wrote {RESULTS.relative_to(REPO)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=Config().sizes)
    args = parser.parse_args()
    main(Config(sizes=args.sizes))
