"""The real MiniLM embedder with `defer=True`: what `chatbot setup` and `chatbot ingest` open.

It must describe itself exactly as the loaded model does (the index stores its identity and sizes),
chunk unchanged files with the same token counts, and load the model only when something is
embedded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.knowledge import KnowledgeBase, SentenceTransformerEmbedder
from bot.knowledge.embedder import bundled_model_dir
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

SAMPLE_DOCS = REPO / "bot" / "knowledge" / "sample" / "docs"


@pytest.fixture(scope="module")
def loaded() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_a_deferred_embedder_describes_itself_as_the_loaded_one(loaded: SentenceTransformerEmbedder) -> None:
    deferred = SentenceTransformerEmbedder(defer=True)
    assert deferred._loaded is None
    assert (deferred.model_id, deferred.dim, deferred.max_tokens) == (
        loaded.model_id,
        loaded.dim,
        loaded.max_tokens,
    )
    assert deferred.min_similarity == loaded.min_similarity


def test_token_counts_before_loading_are_the_loaded_tokenizers(loaded: SentenceTransformerEmbedder) -> None:
    deferred = SentenceTransformerEmbedder(defer=True)
    texts = [p.read_text() for p in sorted(SAMPLE_DOCS.rglob("*.md"))[:8]]
    texts += ["Café déjà-vu: 26 days, 09:30 CET, naïve résumé 🙂", "", "  \n\t"]
    assert [deferred.count_tokens(t) for t in texts] == [loaded.count_tokens(t) for t in texts]
    assert deferred._loaded is None  # counting alone never loads the model


def test_an_unchanged_ingest_never_loads_the_model_and_a_change_does(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS / "benefits-and-leave", docs)
    KnowledgeBase.open(tmp_path / "index", SentenceTransformerEmbedder()).ingest([docs], progress=False)

    again = SentenceTransformerEmbedder(defer=True)
    report = KnowledgeBase.open(tmp_path / "index", again).ingest([docs], progress=False)
    assert (report.added, report.updated, report.removed, report.embedded) == (0, 0, 0, 0)
    assert again._loaded is None

    page = next(docs.rglob("*.md"))
    page.write_text(page.read_text() + "\n\nA new paragraph about the staff canteen's opening hours.\n")
    changed = SentenceTransformerEmbedder(defer=True)
    kb = KnowledgeBase.open(tmp_path / "index", changed)
    report = kb.ingest([docs], progress=False)
    assert report.embedded > 0 and changed._loaded is not None
    assert any("canteen" in p.text for p in kb.search("when is the staff canteen open?", k=3))


def test_a_model_folder_it_cannot_describe_is_loaded_at_once(tmp_path: Path) -> None:
    copy = tmp_path / "minilm"
    shutil.copytree(bundled_model_dir(), copy)
    (copy / "modules.json").unlink()  # no layout to read: only loading the model tells its size
    embedder = SentenceTransformerEmbedder(copy, defer=True)
    assert embedder._loaded is not None and embedder.dim == 384
