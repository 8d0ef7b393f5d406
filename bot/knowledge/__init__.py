"""The knowledge base: reading and chunking documents, ingestion, and hybrid retrieval.

from bot.knowledge import KnowledgeBase, SentenceTransformerEmbedder
kb = KnowledgeBase.open("data/index", SentenceTransformerEmbedder())
kb.ingest(["docs/"])
kb.search("how many vacation days do I get?")
"""

from bot.knowledge.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS, chunk_document
from bot.knowledge.document import Block, Chunk, Document, Section
from bot.knowledge.embedder import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    bundled_model_dir,
    load_embedder,
)
from bot.knowledge.errors import (
    EmbedderMismatch,
    EmbedderUnavailable,
    IndexUnusable,
    KnowledgeError,
    UnreadableDocument,
)
from bot.knowledge.index import Passage
from bot.knowledge.ingest import IngestReport, SkippedFile, ingest
from bot.knowledge.kb import KnowledgeBase, KnowledgeStats
from bot.knowledge.readers import parse_text, read_document

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_OVERLAP_TOKENS",
    "Block",
    "Chunk",
    "Document",
    "Embedder",
    "EmbedderMismatch",
    "EmbedderUnavailable",
    "HashingEmbedder",
    "IndexUnusable",
    "IngestReport",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeStats",
    "Passage",
    "Section",
    "SentenceTransformerEmbedder",
    "SkippedFile",
    "UnreadableDocument",
    "bundled_model_dir",
    "chunk_document",
    "ingest",
    "load_embedder",
    "parse_text",
    "read_document",
]
