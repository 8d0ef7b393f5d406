"""The shapes documents take between reading, chunking and indexing.

Readers turn a file into a `Document` (sections along its headings, each a list of blocks);
the chunker turns a document into `Chunk`s that fit the embedder's token budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BlockKind = Literal["text", "code", "table"]
TITLE_SEPARATOR = " > "


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph or list (`text`), a fenced code block (`code`) or a table (`table`)."""

    kind: BlockKind
    text: str


@dataclass(frozen=True, slots=True)
class Section:
    """The text under one heading, up to the next heading of any level."""

    path: tuple[str, ...]
    blocks: tuple[Block, ...]

    @property
    def title(self) -> str:
        return TITLE_SEPARATOR.join(self.path)


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    title: str
    sections: tuple[Section, ...]
    url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One indexed passage.

    `path` is the absolute file it came from ("" for documents added through the API); ingestion
    uses it to find chunks whose file was deleted. `ordinal` counts chunks with the same title in
    the same document, so the id survives edits elsewhere in the file.
    """

    id: str
    source: str
    title: str
    text: str
    ordinal: int = 0
    url: str | None = None
    path: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    content_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.embed_text.encode("utf-8")).hexdigest()
        object.__setattr__(self, "content_hash", digest)

    @property
    def embed_text(self) -> str:
        """What both retrievers see: the heading path gives a short passage its context."""
        return f"{self.title}\n\n{self.text}"

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "ordinal": self.ordinal,
            "url": self.url,
            "path": self.path,
            "metadata": dict(self.metadata),
            "hash": self.content_hash,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Chunk:
        return cls(
            id=record["id"],
            source=record["source"],
            title=record["title"],
            text=record["text"],
            ordinal=int(record.get("ordinal", 0)),
            url=record.get("url"),
            path=record.get("path", ""),
            metadata=record.get("metadata") or {},
        )


def chunk_id(key: str, title: str, ordinal: int) -> str:
    """Stable across runs: the same file, heading path and position give the same id."""
    digest = hashlib.sha1(f"{key}\0{title}\0{ordinal}".encode()).hexdigest()
    return digest[:20]
