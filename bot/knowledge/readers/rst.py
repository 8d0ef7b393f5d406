"""reStructuredText: section titles by their adornment, literal blocks and tables kept whole.

Docutils is not used on purpose: it would render the text, and we only need the structure. Title
levels follow docutils' rule: each new adornment style (character, with or without overline)
gets the next level in the order the styles first appear.
"""

from __future__ import annotations

import re

from bot.knowledge.document import Block, BlockKind, Document
from bot.knowledge.readers.outline import Event, Heading, build_sections, first_title
from bot.knowledge.readers.text import decode

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")
_FIELD = re.compile(r"^:([\w-]+):\s*(.*?)\s*$")
_SIMPLE_TABLE = re.compile(r"^=+( +=+)+\s*$")
_CODE_DIRECTIVE = re.compile(r"^\.\. (code|code-block|sourcecode|literalinclude)::")


def _is_adornment(line: str) -> bool:
    return bool(_ADORNMENT.match(line)) and len(line.strip()) >= 2


def _title_at(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """A section title starting at line i: (text, style, lines used), or None."""
    line = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    if _is_adornment(line) and i + 2 < len(lines):
        text, under = lines[i + 1], lines[i + 2]
        if text.strip() and under.strip() == line.strip() and not _is_adornment(text):
            return text.strip(), (line.strip()[0], True), 3
    # Docutils accepts an underline shorter than the title only with a warning; requiring the
    # full length keeps a sentence followed by a "----" transition from becoming a title.
    underlined = _is_adornment(nxt) and len(nxt.rstrip()) >= len(line.rstrip())
    if underlined and line.strip() and not line[0].isspace() and not _is_adornment(line):
        return line.strip(), (nxt.strip()[0], False), 2
    return None


def _kind(group: list[str]) -> BlockKind:
    first = group[0].lstrip()
    if first.startswith(("+-", "+=")) or _SIMPLE_TABLE.match(group[0]):
        return "table"
    return "text"


def _introduces_literal(group: list[str]) -> bool:
    return group[-1].rstrip().endswith("::") or group[0].startswith(".. ")


def parse_events(lines: list[str]) -> tuple[list[Event], dict[str, str]]:
    events: list[Event] = []
    fields: dict[str, str] = {}
    styles: list[tuple[str, bool]] = []
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        title = _title_at(lines, i)
        if title:
            text, style, used = title
            if style not in styles:
                styles.append(style)
            events.append(Heading(styles.index(style) + 1, text))
            i += used
            continue
        start = i
        while i < n and lines[i].strip():
            i += 1
        group = lines[start:i]
        if all(_FIELD.match(line) for line in group) and not any(isinstance(e, Block) for e in events):
            # Bibliographic fields at the top (`:url:`, `:title:`) describe the page, not content.
            for line in group:
                match = _FIELD.match(line)
                if match:
                    fields[match.group(1).lower()] = match.group(2)
            continue
        kind = _kind(group)
        if _introduces_literal(group):
            # The indented block that follows (blank lines included) belongs to this paragraph.
            end = i
            while end < n and (not lines[end].strip() or lines[end][:1].isspace()):
                end += 1
            while end > i and not lines[end - 1].strip():
                end -= 1
            if end > i:
                is_code = group[-1].rstrip().endswith("::") or _CODE_DIRECTIVE.match(group[0])
                kind = "code" if is_code else "text"
                group = lines[start:end]
                i = end
        events.append(Block(kind, "\n".join(group)))
    return events, fields


def read_rst(data: bytes, source: str, fallback_title: str) -> Document:
    events, fields = parse_events(decode(data).split("\n"))
    title = first_title(events) or fields.get("title") or fallback_title
    url = fields.get("url", "")
    return Document(
        source=source,
        title=title,
        sections=build_sections(events, title),
        url=url if url.startswith(("http://", "https://")) else None,
    )
