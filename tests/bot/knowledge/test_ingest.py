"""Ingestion: incremental updates, unreadable files, persistence and documents added by the bot."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.knowledge import EmbedderMismatch, HashingEmbedder, KnowledgeBase, ingest

PAGES = {
    "leave.md": "# Annual Leave\n\n## Allowance\n\nFull-time staff get 26 vacation days.\n\n"
    "## Carry over\n\nUp to 5 unused days carry over to March.\n",
    "it/vpn.md": "# VPN\n\n## Client\n\nInstall Tunnelbird from the Self Service portal.\n\n"
    "## Gateways\n\nUse gw-ams for Rotterdam and gw-tor for Toronto.\n",
    "it/laptops.md": "# Laptops\n\n## Refresh\n\nLaptops are replaced every three years.\n",
}


class CountingEmbedder(HashingEmbedder):
    """The fake embedder, counting what it is asked to embed."""

    def __init__(self, dim: int = 128) -> None:
        super().__init__(dim)
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return super().embed(texts)


def _docs(root: Path, pages: dict[str, str] = PAGES) -> Path:
    for name, text in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, "utf-8")
    return root


def test_first_ingest_adds_everything(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    report = ingest([docs], tmp_path / "index", HashingEmbedder(), progress=False)
    counts = (report.files_read, report.added, report.updated, report.unchanged, report.removed)
    assert counts == (3, 5, 0, 0, 0)
    assert report.chunks == report.embedded == 5
    assert report.skipped == [] and report.seconds > 0
    assert "5 chunks added" in report.summary()


def test_reingest_skips_unchanged_updates_changed_and_removes_deleted(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    embedder = CountingEmbedder()
    kb = KnowledgeBase.open(tmp_path / "index", embedder)
    kb.ingest([docs], progress=False)

    embedder.embedded.clear()
    again = kb.ingest([docs], progress=False)
    assert (again.added, again.updated, again.unchanged, again.removed, again.embedded) == (0, 0, 5, 0, 0)
    assert embedder.embedded == [], "unchanged chunks keep their embeddings"

    (docs / "leave.md").write_text(
        PAGES["leave.md"]
        .replace("26 vacation days", "27 vacation days")
        .replace("## Carry over\n\nUp to 5 unused days carry over to March.\n", "")
        + "\n## Buying days\n\nYou can buy up to 5 extra days.\n",
        "utf-8",
    )
    (docs / "it" / "laptops.md").unlink()
    report = kb.ingest([docs], progress=False)

    assert (report.added, report.updated, report.unchanged, report.removed) == (1, 1, 2, 2)
    assert report.embedded == 2 and len(embedder.embedded) == 2
    assert kb.stats().chunks == 4 and kb.stats().documents == 2
    titles = [p.title for p in kb.search("vacation days allowance", k=5, min_similarity=-1)]
    assert "Annual Leave > Allowance" in titles and "Annual Leave > Carry over" not in titles
    assert kb.search("laptop refresh every three years", min_similarity=-1)[0].source != "it/laptops.md"


def test_only_the_ingested_roots_are_pruned(tmp_path: Path) -> None:
    hr = _docs(tmp_path / "hr", {"leave.md": PAGES["leave.md"]})
    it = _docs(tmp_path / "it", {"vpn.md": PAGES["it/vpn.md"]})
    index = tmp_path / "index"
    embedder = HashingEmbedder()
    ingest([hr, it], index, embedder, progress=False)
    (it / "vpn.md").unlink()
    _docs(it, {"laptops.md": PAGES["it/laptops.md"]})

    report = ingest([it], index, embedder, progress=False)
    assert (report.added, report.removed, report.chunks) == (1, 2, 3)
    single = ingest([hr / "leave.md"], index, embedder, progress=False)
    assert (single.unchanged, single.removed, single.chunks) == (2, 0, 3)


def test_unreadable_files_are_reported_and_the_rest_ingested(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj garbage")
    (docs / "legacy.md").write_bytes("# Caf\xe9\n\nMen\xfc".encode("latin-1"))
    (docs / "notes.png").write_bytes(b"\x89PNG")  # unsupported types are ignored, not reported
    locked = docs / "locked.md"
    locked.write_text("# Secret\n\nHidden.\n", "utf-8")
    locked.chmod(0)
    can_bypass_permissions = os.access(locked, os.R_OK)  # root reads anything

    report = ingest([docs, tmp_path / "missing"], tmp_path / "index", HashingEmbedder(), progress=False)

    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert "not a readable PDF" in reasons["broken.pdf"]
    assert "not valid utf-8" in reasons["legacy.md"]
    assert reasons["missing"] == "no such file or directory"
    if not can_bypass_permissions:
        assert reasons["locked.md"] == "permission denied"
    assert "notes.png" not in reasons
    assert report.files_read == 3 + can_bypass_permissions
    assert report.added == 5 + can_bypass_permissions
    assert "Skipped" in report.summary() and "broken.pdf" in report.summary()


def test_a_file_that_becomes_unreadable_keeps_its_chunks(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    index = tmp_path / "index"
    ingest([docs], index, HashingEmbedder(), progress=False)
    (docs / "leave.md").write_bytes(b"\xff\xfe broken now")
    report = ingest([docs], index, HashingEmbedder(), progress=False)
    assert report.removed == 0 and report.chunks == 5
    assert [s.path for s in report.skipped] == [str(docs / "leave.md")]


def test_the_index_persists_and_reopens(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    index = tmp_path / "index"
    first = KnowledgeBase.open(index, HashingEmbedder())
    first.ingest([docs], progress=False)
    correction = "Q: Is there a VPN for Lisbon?\n\nA: Yes, gw-lis."
    first.add_document(correction, source="correction:7", title="Lisbon VPN")
    before = first.search("which VPN gateway for Toronto", k=3)

    reopened = KnowledgeBase.open(index, HashingEmbedder())
    after = reopened.search("which VPN gateway for Toronto", k=3)
    assert before and [p.id for p in after] == [p.id for p in before]
    assert after[0].title == "VPN > Gateways" and after[0].source == "it/vpn.md"
    assert reopened.stats() == first.stats()
    assert reopened.search("Lisbon VPN gw-lis")[0].source == "correction:7"


def test_documents_added_by_the_bot_are_cheap_and_survive_ingestion(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    embedder = CountingEmbedder()
    kb = KnowledgeBase.open(tmp_path / "index", embedder)
    kb.ingest([docs], progress=False)
    generation = kb.stats().generation
    embedder.embedded.clear()

    ids = kb.add_document(
        "Q: Can I carry over more than 5 days?\n\nA: Only with HR approval.",
        source="correction:42",
        title="Correction: carrying over leave",
        metadata={"approved_by": "U123"},
    )
    stats = kb.stats()
    assert len(ids) == 1 and len(embedder.embedded) == 1
    assert (stats.generation, stats.pending, stats.chunks) == (generation, 1, 6), "no rebuild"
    hit = kb.search("carry over more than 5 days HR approval")[0]
    assert (hit.id, hit.source, hit.metadata["approved_by"]) == (ids[0], "correction:42", "U123")

    # Adding under the same source replaces; ingestion keeps it; removing drops it.
    kb.add_document("Q: Carry over?\n\nA: Ask HR.", source="correction:42", title="Correction: carry over")
    assert kb.stats().chunks == 6
    report = kb.ingest([docs], progress=False)
    assert (report.unchanged, report.removed, kb.stats().pending, kb.stats().chunks) == (5, 0, 0, 6)
    assert kb.remove_document("correction:42") == 1
    assert kb.remove_document("correction:42") == 0
    assert all(p.source != "correction:42" for p in kb.search("carry over HR", min_similarity=-1))
    assert kb.remove_document("leave.md") == 2 and kb.stats().chunks == 3

    kb.compact()
    assert (kb.stats().pending, kb.stats().chunks) == (0, 3)
    assert KnowledgeBase.open(tmp_path / "index", HashingEmbedder(128)).stats().chunks == 3


def test_another_instance_sees_writes_after_its_reload_interval(tmp_path: Path) -> None:
    index = tmp_path / "index"
    writer = KnowledgeBase.open(index, HashingEmbedder())
    reader = KnowledgeBase.open(index, HashingEmbedder(), reload_interval=0)
    assert reader.search("Tunnelbird gateways") == []
    writer.ingest([_docs(tmp_path / "docs")], progress=False)
    assert reader.search("Tunnelbird gateways")[0].source == "it/vpn.md"
    writer.add_document("Tunnelbird gateways moved to gw2.", source="notice:1", title="Gateway notice")
    assert "notice:1" in {p.source for p in reader.search("Tunnelbird gateways moved")}


def test_a_new_embedding_model_re_embeds_and_an_old_one_is_refused(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    index = tmp_path / "index"
    ingest([docs], index, HashingEmbedder(64), progress=False)
    with pytest.raises(EmbedderMismatch, match="chatbot ingest"):
        KnowledgeBase.open(index, HashingEmbedder(128)).search("vacation days")
    report = ingest([docs], index, HashingEmbedder(128), progress=False)
    assert (report.unchanged, report.embedded) == (5, 5)
    assert KnowledgeBase.open(index, HashingEmbedder(128)).search("vacation days")


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingest([_docs(tmp_path / "docs")], tmp_path / "index", HashingEmbedder(), progress=True)
    err = capsys.readouterr().err
    assert "Reading" in err and "Embedding" in err


def test_concurrent_searches_and_writes(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "index", HashingEmbedder(), reload_interval=0)
    kb.ingest([_docs(tmp_path / "docs")], progress=False)
    expected = [p.id for p in kb.search("vacation days carry over", k=3)]
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for _ in range(30):
                assert [p.id for p in kb.search("vacation days carry over", k=3)][:2] == expected[:2]
        except BaseException as exc:
            errors.append(exc)

    def writer(n: int) -> None:
        try:
            for i in range(5):
                kb.add_document(f"Note {n}-{i} about parking.", source=f"note:{n}:{i}", title="Parking note")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    threads += [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert kb.stats().chunks == 15
