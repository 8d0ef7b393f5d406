"""HTML with the standard library's parser: headings, paragraphs, lists, tables and <pre>.

Navigation, scripts and styles are dropped; `<link rel="canonical">` (or `og:url`) gives the URL.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from bot.knowledge.document import Block, Document
from bot.knowledge.readers.outline import Event, Heading, build_sections, first_title
from bot.knowledge.readers.text import decode

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "nav", "footer", "button", "form"})
_BLOCK = frozenset(
    {"p", "div", "li", "dd", "dt", "blockquote", "section", "article", "main", "header", "ul", "ol",
     "dl", "figure", "figcaption", "caption", "address", "aside", "details", "summary", "body"}
)  # fmt: skip
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "source", "col", "area", "base"})
_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([\w-]+)""", re.I)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[Event] = []
        self.page_title = ""
        self.url: str | None = None
        self._skip: list[str] = []  # open elements whose content is dropped
        self._text: list[str] = []
        self._heading: int | None = None
        self._in_title = False
        self._pre = 0
        self._rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._header_row = False
        self._table_depth = 0

    # Text is collected into `_text` and flushed as one block when a block element starts or ends.
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "link" and "canonical" in attr.get("rel", "").lower().split() and attr.get("href"):
            self.url = attr["href"]
        elif tag == "meta" and attr.get("property") == "og:url" and attr.get("content") and not self.url:
            self.url = attr["content"]
        if self._skip:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        if tag in _SKIP:
            self._skip.append(tag)
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS and not self._table_depth:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag == "table":
            self._flush()
            self._table_depth += 1
            if self._table_depth == 1:
                self._rows, self._header_row = [], False
        elif tag == "tr" and self._table_depth == 1:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._header_row = self._header_row or (tag == "th" and not self._rows)
            self._text = []
        elif tag == "br":
            self._text.append("\n")
        elif tag == "li" and not self._table_depth:
            self._flush()
            self._text.append("- ")
        elif tag in _BLOCK and not self._table_depth:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag == "title":
            self._in_title = False
        elif tag in _HEADINGS and self._heading is not None:
            self.events.append(Heading(self._heading, _squash("".join(self._text))))
            self._text, self._heading = [], None
        elif tag == "pre" and self._pre:
            self._pre -= 1
            code = "".join(self._text).strip("\n")
            if code.strip():
                self.events.append(Block("code", f"```\n{code}\n```"))
            self._text = []
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(_squash("".join(self._text)).replace("|", "\\|"))
            self._text = []
        elif tag == "tr" and self._row is not None:
            if any(self._row):
                self._rows.append(self._row)
            self._row = None
        elif tag == "table" and self._table_depth:
            self._table_depth -= 1
            if not self._table_depth:
                self._emit_table()
        elif tag in _BLOCK and not self._table_depth:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.page_title += data
        else:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        if self._pre or self._heading is not None or self._table_depth:
            return
        lines = [_squash(line) for line in "".join(self._text).split("\n")]
        text = "\n".join(line for line in lines if line)
        if text.strip("- "):
            self.events.append(Block("text", text))
        self._text = []

    def _emit_table(self) -> None:
        if not self._rows:
            return
        width = max(len(row) for row in self._rows)
        lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in self._rows]
        if self._header_row:
            lines.insert(1, "|" + "---|" * width)
        self.events.append(Block("table", "\n".join(lines)))


def _squash(text: str) -> str:
    return " ".join(text.split())


def read_html(data: bytes, source: str, fallback_title: str) -> Document:
    declared = _CHARSET.search(data[:2048])
    parser = _Parser()
    parser.feed(decode(data, declared.group(1).decode("ascii") if declared else "utf-8"))
    parser.close()
    title = first_title(parser.events) or _squash(parser.page_title) or fallback_title
    url = parser.url if parser.url and parser.url.startswith(("http://", "https://")) else None
    return Document(source=source, title=title, sections=build_sections(parser.events, title), url=url)
