"""Splits a document's sections into chunks that fit the embedder's token budget.

A chunk never crosses a heading: its title is its section's heading path. A section that does
not fit is split between paragraphs (blocks), and a block that does not fit by itself is split
between list items or sentences (text), lines (code, each piece fenced again) or rows (tables,
the header repeated). Only a single line or sentence longer than the whole budget is cut between
words. Consecutive pieces of one section share a sentence or two of overlap, so a fact stated
across the cut is still found together.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.knowledge.document import Block, BlockKind, Chunk, Document, chunk_id
from bot.knowledge.tokens import TokenCounter, approx_tokens, split_sentences

DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32
# However long a heading path is, leave room for some text under it.
MIN_BODY_TOKENS = 32

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)])\s")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    tokens: int
    kind: BlockKind
    # What goes before this unit when it follows another one in the same chunk.
    joiner: str = "\n\n"


def chunk_document(
    doc: Document,
    *,
    key: str | None = None,
    path: str = "",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count_tokens: TokenCounter = approx_tokens,
) -> list[Chunk]:
    """Chunks of `doc`, each at most `max_tokens` counting its title (what the embedder sees).

    `key` makes ids unique across documents (ingestion passes the absolute path); `path` is
    recorded so ingestion can tell which chunks a deleted file leaves behind.
    """
    key = key or doc.source
    seen: Counter[str] = Counter()
    chunks: list[Chunk] = []
    for section in doc.sections:
        title = section.title
        budget = max(max_tokens - count_tokens(title), MIN_BODY_TOKENS)
        for text in pack(section.blocks, budget, overlap_tokens, count_tokens):
            ordinal = seen[title]
            seen[title] += 1
            chunks.append(
                Chunk(
                    id=chunk_id(key, title, ordinal),
                    source=doc.source,
                    title=title,
                    text=text,
                    ordinal=ordinal,
                    url=doc.url,
                    path=path,
                    metadata=doc.metadata,
                )
            )
    return chunks


def pack(blocks: Sequence[Block], budget: int, overlap: int, count: TokenCounter) -> list[str]:
    """Greedily fills chunks with whole units; a new chunk starts with the previous one's tail."""
    texts: list[str] = []
    current: list[_Unit] = []
    used = 0
    for block in blocks:
        for unit in _units(block, budget, count):
            if current and used + unit.tokens > budget:
                texts.append(_join(current))
                current = _overlap(current[-1], min(overlap, budget - unit.tokens), count)
                used = sum(u.tokens for u in current)
            current.append(unit)
            used += unit.tokens
    if current:
        texts.append(_join(current))
    return texts


def _join(units: list[_Unit]) -> str:
    return units[0].text + "".join(u.joiner + u.text for u in units[1:])


def _overlap(last: _Unit, limit: int, count: TokenCounter) -> list[_Unit]:
    """The last sentences of a text unit, up to `limit` tokens; code and tables are not repeated."""
    if last.kind != "text" or limit <= 0:
        return []
    tail: list[str] = []
    used = 0
    for sentence in reversed(split_sentences(last.text)):
        tokens = count(sentence)
        if used + tokens > limit:
            break
        tail.insert(0, sentence)
        used += tokens
    return [_Unit(" ".join(tail), used, "text")] if tail else []


def _units(block: Block, budget: int, count: TokenCounter) -> list[_Unit]:
    tokens = count(block.text)
    if tokens <= budget:
        return [_Unit(block.text, tokens, block.kind)]
    if block.kind == "code":
        return _split_code(block.text, budget, count)
    if block.kind == "table":
        return _split_table(block.text, budget, count)
    return _split_text(block.text, budget, count)


def _split_text(text: str, budget: int, count: TokenCounter) -> list[_Unit]:
    lines = text.split("\n")
    if sum(bool(_LIST_ITEM.match(line)) for line in lines) * 2 >= len(lines):
        # A list: split between items, each item with its continuation lines.
        items: list[str] = []
        for line in lines:
            if items and not _LIST_ITEM.match(line):
                items[-1] += "\n" + line
            else:
                items.append(line)
        pieces, joiner = items, "\n"
    else:
        # Prose: line breaks inside a paragraph are soft wraps, so split between sentences.
        pieces, joiner = split_sentences(" ".join(line.strip() for line in lines)), " "
    units: list[_Unit] = []
    for piece in pieces:
        tokens = count(piece)
        if tokens <= budget:
            units.append(_Unit(piece, tokens, "text", joiner))
        else:
            units.extend(_split_words(piece, budget, count, "text"))
    return _first_joins_paragraph(units)


def _split_code(text: str, budget: int, count: TokenCounter) -> list[_Unit]:
    lines = text.split("\n")
    fence = _FENCE.match(lines[0])
    opening = lines[0] if fence else ""
    closing = ""
    if fence:
        # Every piece is fenced again, so it still reads (and renders) as code.
        closing = lines[-1] if len(lines) > 1 and _FENCE.match(lines[-1]) else fence.group(1)
    body = lines[1 if opening else 0 : -1 if opening and _FENCE.match(lines[-1]) else None]
    wrap = count(opening) + count(closing)
    units = []
    for piece, tokens in _pack_lines(body, budget - wrap, count):
        units.append(_Unit("\n".join(x for x in (opening, piece, closing) if x), tokens + wrap, "code"))
    return units


def _split_table(text: str, budget: int, count: TokenCounter) -> list[_Unit]:
    lines = text.split("\n")
    header_lines = 2 if len(lines) > 2 and _TABLE_SEPARATOR.match(lines[1]) else 1
    header = "\n".join(lines[:header_lines])
    header_tokens = count(header)
    if header_tokens * 2 > budget:  # a header that big is better treated as a row
        header, header_tokens, header_lines = "", 0, 0
    pieces = _pack_lines(lines[header_lines:], budget - header_tokens, count)
    return [
        _Unit(f"{header}\n{piece}" if header else piece, t + header_tokens, "table") for piece, t in pieces
    ]


def _pack_lines(lines: list[str], budget: int, count: TokenCounter) -> list[tuple[str, int]]:
    """Lines packed into pieces of at most `budget` tokens; never cut inside a line that fits."""
    pieces: list[tuple[str, int]] = []
    current: list[str] = []
    used = 0
    for line in lines:
        tokens = count(line)
        if tokens > budget:
            if current:
                pieces.append(("\n".join(current), used))
                current, used = [], 0
            pieces.extend((u.text, u.tokens) for u in _split_words(line, budget, count, "code"))
            continue
        if current and used + tokens > budget:
            pieces.append(("\n".join(current), used))
            current, used = [], 0
        current.append(line)
        used += tokens
    if current:
        pieces.append(("\n".join(current), used))
    return pieces


def _split_words(text: str, budget: int, count: TokenCounter, kind: BlockKind) -> list[_Unit]:
    """The last resort for one sentence or line longer than a whole chunk."""
    units: list[_Unit] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        tokens = count(word)
        if current and used + tokens > max(budget, 1):
            units.append(_Unit(" ".join(current), used, kind, " "))
            current, used = [], 0
        current.append(word)
        used += tokens
    if current:
        units.append(_Unit(" ".join(current), used, kind, " "))
    return units


def _first_joins_paragraph(units: list[_Unit]) -> list[_Unit]:
    if units:
        first = units[0]
        units[0] = _Unit(first.text, first.tokens, first.kind)
    return units
