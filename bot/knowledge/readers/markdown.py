"""Markdown (CommonMark headings, GFM tables, fenced code) with optional YAML-ish front matter."""

from __future__ import annotations

import re

from bot.knowledge.document import Block, Document
from bot.knowledge.readers.outline import Event, Heading, build_sections, first_title
from bot.knowledge.readers.text import decode

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")
_FRONT_MATTER_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")
URL_KEYS = ("url", "canonical_url", "canonical", "source_url", "permalink")


def front_matter(lines: list[str]) -> tuple[dict[str, str], int]:
    """Top-level `key: value` pairs of a leading `---` block and the line where the body starts.

    Nested YAML is ignored: only scalars like `title:` and `url:` matter here, and PyYAML is not a
    dependency.
    """
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, 0
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        match = _FRONT_MATTER_LINE.match(line)
        if match and match.group(2):
            fields[match.group(1).lower()] = match.group(2).strip("\"'")
    return fields, end + 1


def url_from(fields: dict[str, str]) -> str | None:
    for key in URL_KEYS:
        value = fields.get(key, "")
        if value.startswith(("http://", "https://")):
            return value
    return None


def _is_table_start(lines: list[str], i: int) -> bool:
    line = lines[i]
    if line.lstrip().startswith("|"):
        return True
    return "|" in line and _has_separator_below(lines, i)


def _has_separator_below(lines: list[str], i: int) -> bool:
    return i + 1 < len(lines) and bool(_TABLE_SEPARATOR.match(lines[i + 1]))


def parse_events(lines: list[str]) -> list[Event]:
    events: list[Event] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            events.append(Block("text", "\n".join(paragraph)))
            paragraph.clear()

    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            # The block ends at a fence of the same character at least as long; `#` lines inside
            # it are code, not headings. An unclosed fence runs to the end, as in CommonMark.
            closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
            end = next((j for j in range(i + 1, n) if closing.match(lines[j])), n - 1)
            events.append(Block("code", "\n".join(lines[i : end + 1])))
            i = end + 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            events.append(Heading(len(atx.group(1)), atx.group(2) or ""))
        elif paragraph and _SETEXT.match(line) and not _LIST_ITEM.match(paragraph[0]):
            level = 1 if line.strip()[0] == "=" else 2
            events.append(Heading(level, " ".join(s.strip() for s in paragraph)))
            paragraph.clear()
        elif not line.strip():
            flush()
        elif _is_table_start(lines, i) and (not paragraph or _has_separator_below(lines, i)):
            flush()
            end = i
            while end + 1 < n and lines[end + 1].strip() and "|" in lines[end + 1]:
                end += 1
            events.append(Block("table", "\n".join(lines[i : end + 1])))
            i = end + 1
            continue
        else:
            paragraph.append(line)
        i += 1
    flush()
    return events


def read_markdown(data: bytes, source: str, fallback_title: str) -> Document:
    lines = decode(data).split("\n")
    fields, body_start = front_matter(lines)
    events = parse_events(lines[body_start:])
    title = first_title(events) or fields.get("title") or fallback_title
    metadata = {k: v for k, v in fields.items() if k in ("title", "author", "date", "tags")}
    return Document(
        source=source,
        title=title,
        sections=build_sections(events, title),
        url=url_from(fields),
        metadata=metadata,
    )
