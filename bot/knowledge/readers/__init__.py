"""One reader per format; each turns a file's bytes into a `Document`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.knowledge.document import Document
from bot.knowledge.errors import UnreadableDocument
from bot.knowledge.readers.html import read_html
from bot.knowledge.readers.markdown import read_markdown
from bot.knowledge.readers.pdf import read_pdf
from bot.knowledge.readers.rst import read_rst
from bot.knowledge.readers.text import read_text, title_from_path

# (file contents, source, title to use when the document names none) -> Document
Reader = Callable[[bytes, str, str], Document]

READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".mdx": read_markdown,
    ".rst": read_rst,
    ".rest": read_rst,
    ".html": read_html,
    ".htm": read_html,
    ".txt": read_text,
    ".text": read_text,
    ".pdf": read_pdf,
}
FORMATS: dict[str, Reader] = {
    "markdown": read_markdown,
    "rst": read_rst,
    "html": read_html,
    "text": read_text,
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in READERS


def read_document(path: Path, source: str) -> Document:
    """Reads one file; every failure, from permissions to a corrupt PDF, is `UnreadableDocument`."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableDocument(f"unsupported file type {path.suffix or '(none)'!r}")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise UnreadableDocument("permission denied") from None
    except IsADirectoryError:
        raise UnreadableDocument("is a directory") from None
    except OSError as exc:
        raise UnreadableDocument(exc.strerror or str(exc)) from None
    return reader(data, source, title_from_path(path))


def parse_text(text: str, source: str, title: str, fmt: str = "markdown") -> Document:
    """A document that is not a file (an approved correction, say), parsed like one."""
    reader = FORMATS.get(fmt)
    if reader is None:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return reader(text.encode("utf-8"), source, title)
