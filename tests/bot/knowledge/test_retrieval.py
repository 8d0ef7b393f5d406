"""Hybrid retrieval: fusion, the relevance floor, the large-index path, and recall on the sample wiki."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.knowledge import HashingEmbedder, KnowledgeBase
from bot.knowledge import segment as segment_module
from bot.knowledge.evaluate import SAMPLE_DOCS, load_questions, recall
from bot.knowledge.index import Mode, load_state

# Six short pages with neutral titles, so only their text decides. "reimbursing" and "printing"
# share no BM25 term with their pages (only plurals are folded) but share character trigrams,
# which the fake embedder sees, like a real one would see the meaning.
PAGES = [
    "Finance reimburses approved expense claims within ten working days.",
    "Keep the receipt for every expense claim above EUR 25.",
    "Tunnelbird is the VPN client for the office network.",
    "Printers print from the office network, never over the VPN.",
    "Garage parking spots near the office are booked in Perch.",
    "Lockers near the office are free; bring your own padlock.",
]
QUERIES = {
    "reimbursing claims": 0,
    "receipts": 1,
    "printing over VPN": 3,
    "booking garage parking": 4,
    "office network padlock": 5,
}


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    knowledge = KnowledgeBase.open(tmp_path / "index", HashingEmbedder())
    for number, text in enumerate(PAGES):
        knowledge.add_document(text, source=f"page{number}", title=f"Page {number}", fmt="text")
    knowledge.compact()
    return knowledge


def _hits_at_1(kb: KnowledgeBase, mode: Mode) -> int:
    return sum(
        bool(found) and found[0].source == f"page{want}"
        for query, want in QUERIES.items()
        for found in [kb.search(query, k=1, mode=mode)]
    )


def test_hybrid_is_at_least_as_good_as_either_retriever_alone(kb: KnowledgeBase) -> None:
    hybrid, dense, lexical = (_hits_at_1(kb, mode) for mode in ("hybrid", "dense", "lexical"))
    assert hybrid >= max(dense, lexical)
    assert hybrid == len(QUERIES)
    assert lexical < hybrid, "word forms BM25 cannot match are found through the embeddings"


def test_passages_carry_their_provenance_and_debug_ranks(kb: KnowledgeBase) -> None:
    best = kb.search("printing over VPN", k=3)
    assert [p.source for p in best][:2] == ["page3", "page2"]
    top = best[0]
    assert (top.title, top.url, top.text) == ("Page 3", None, PAGES[3])
    assert top.dense_rank == 1 and top.lexical_rank == 2
    assert top.score == pytest.approx(1 / 61 + 1 / 62)
    assert 0 < top.similarity <= 1
    assert [p.score for p in best] == sorted((p.score for p in best), reverse=True)
    assert len({p.id for p in best}) == 3


@pytest.mark.parametrize("query", ["banana bread recipe", "who won the world cup?", "capital of Australia"])
def test_off_topic_questions_get_nothing(kb: KnowledgeBase, query: str) -> None:
    assert kb.search(query) == []
    assert kb.search(query, min_similarity=-1.0), "the floor, not an empty index, is what said no"


def test_empty_queries_and_indexes_return_nothing(kb: KnowledgeBase, tmp_path: Path) -> None:
    assert kb.search("   ") == [] and kb.search("receipts", k=0) == []
    assert KnowledgeBase.open(tmp_path / "nothing", HashingEmbedder()).search("receipts") == []


def test_documents_added_later_rank_like_indexed_ones(kb: KnowledgeBase) -> None:
    """The journal's BM25 scoring matches the rebuilt index's closely enough to give one ranking."""
    kb.add_document("Padlocks for lockers are sold at reception.", source="page6", title="Page 6", fmt="text")
    before = [p.source for p in kb.search("padlock lockers", k=3)]
    kb.compact()
    after = [p.source for p in kb.search("padlock lockers", k=3)]
    assert before == after
    assert set(before[:2]) == {"page5", "page6"}


def test_the_coarse_binary_pass_of_large_indexes(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above EXACT_LIMIT rows, candidates come from Hamming distances of sign codes first."""
    monkeypatch.setattr(segment_module, "EXACT_LIMIT", 0)
    monkeypatch.setattr(segment_module, "RESCORE", 1)
    segment = load_state(kb.index_dir, kb.embedder.dim).segment
    vectors = kb.embedder.embed([f"Page {number}\n\n{text}" for number, text in enumerate(PAGES)])
    removed = np.zeros(len(PAGES), dtype=bool)
    removed[3] = True
    for number, vector in enumerate(vectors):
        rows, sims = segment.dense(vector, 1, None)  # 4 of 6 rows are scored exactly
        assert rows.tolist() == [number] and sims[0] == pytest.approx(1.0, abs=1e-5)
        assert 3 not in segment.dense(vector, 1, removed)[0]
    assert kb.search(PAGES[2], k=1, mode="dense")[0].source == "page2"


def test_the_knowledge_base_is_what_the_pipeline_expects(kb: KnowledgeBase) -> None:
    from bot.pipeline import Retriever

    retriever: Retriever = kb
    (passage,) = retriever.search("receipts", 1)
    assert (passage.id, passage.title, passage.source, passage.url) == (passage.id, "Page 1", "page1", None)
    assert isinstance(passage.score, float) and passage.text == PAGES[1]


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    from bot.knowledge import SentenceTransformerEmbedder

    knowledge = KnowledgeBase.open(tmp_path_factory.mktemp("sample-index"), SentenceTransformerEmbedder())
    knowledge.ingest([SAMPLE_DOCS], progress=False)
    yield knowledge


@pytest.mark.slow
def test_recall_at_5_on_the_sample_test_split(sample_kb: KnowledgeBase) -> None:
    result = recall(sample_kb, load_questions(splits=("test",)))
    assert result.questions >= 50
    assert result.recall_at_5 >= 0.90, result


@pytest.mark.slow
def test_the_calibrated_floor_rejects_off_topic_questions(sample_kb: KnowledgeBase) -> None:
    import torch

    threads = torch.get_num_threads()
    assert sample_kb.search("What's the recipe for a classic margarita cocktail?") == []
    assert sample_kb.search("How tall is Mount Everest?") == []
    assert sample_kb.search("how many vacation days do we get per year?")
    assert torch.get_num_threads() == threads, "a query runs on one thread, then the setting is restored"
