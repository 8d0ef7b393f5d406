"""PDF through pypdf: the text of each page, sections from the PDF's outline (bookmarks)."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from pypdf import PdfReader

from bot.knowledge.document import Block, Document
from bot.knowledge.errors import UnreadableDocument
from bot.knowledge.readers.outline import Event, Heading, build_sections
from bot.knowledge.readers.text import paragraphs

log = logging.getLogger(__name__)
_HYPHENATED = re.compile(r"(\w)-\n(\w)")
_KEEP_BREAK = re.compile(r"[.:;!?]$")
_STARTS_ITEM = re.compile(r"^\s*([-•*▪–]|\d+[.)])\s")


def _reflow(text: str) -> str:
    """Joins the visual lines of a paragraph, so the chunker can split it between sentences."""
    text = _HYPHENATED.sub(r"\1\2", text)
    out: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if out and not _KEEP_BREAK.search(out[-1]) and not _STARTS_ITEM.match(line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def _outline(reader: PdfReader) -> dict[int, list[Heading]]:
    """Bookmarks by the page they point at; level 1 is left for the document's title."""
    by_page: dict[int, list[Heading]] = {}

    def walk(items: list[Any], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            page = reader.get_destination_page_number(item)
            if page is not None and page >= 0 and getattr(item, "title", None):
                by_page.setdefault(page, []).append(Heading(depth + 2, str(item.title)))

    try:
        walk(reader.outline, 0)
    except Exception as exc:  # a broken outline still leaves readable pages
        log.debug("ignoring an unreadable PDF outline: %s", exc)
        return {}
    return by_page


def read_pdf(data: bytes, source: str, fallback_title: str) -> Document:
    # pypdf raises many kinds of exceptions on damaged files; any of them means "unreadable".
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("the PDF is protected by a password")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
        headings = _outline(reader)
    except UnreadableDocument:
        raise
    except Exception as exc:
        raise UnreadableDocument(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if not any(text.strip() for text in pages):
        raise UnreadableDocument("the PDF has no extractable text (scanned pages need OCR first)")
    title = (meta_title or "").strip() or fallback_title
    events: list[Event] = []
    for number, text in enumerate(pages):
        events.extend(headings.get(number, []))
        events.extend(Block("text", _reflow(b.text)) for b in paragraphs(text))
    return Document(source=source, title=title, sections=build_sections(events, title))
