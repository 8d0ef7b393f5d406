"""Plain text, and the decoding every text format shares."""

from __future__ import annotations

import re
from pathlib import Path

from bot.knowledge.document import Block, Document, Section
from bot.knowledge.errors import UnreadableDocument

_BLANK_LINES = re.compile(r"\n\s*\n")


def decode(data: bytes, encoding: str = "utf-8") -> str:
    """Strict decoding: a wrongly decoded file would be indexed as mojibake, so refuse it instead."""
    if b"\0" in data[:8192]:
        raise UnreadableDocument("looks like a binary file, not text")
    try:
        text = data.decode("utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding)
    except LookupError:
        raise UnreadableDocument(f"unknown text encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(
            f"not valid {encoding} text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def title_from_path(path: Path) -> str:
    """`vpn-setup_guide.txt` -> "Vpn setup guide": better than nothing for untitled files."""
    words = re.sub(r"[-_]+", " ", path.stem).strip()
    return words[:1].upper() + words[1:] if words else path.name


def paragraphs(text: str) -> list[Block]:
    return [Block("text", p.strip("\n")) for p in _BLANK_LINES.split(text) if p.strip()]


def read_text(data: bytes, source: str, fallback_title: str) -> Document:
    title = fallback_title
    blocks = tuple(paragraphs(decode(data)))
    sections = (Section((title,), blocks),) if blocks else ()
    return Document(source=source, title=title, sections=sections)
