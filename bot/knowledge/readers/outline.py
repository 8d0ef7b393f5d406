"""Turns a stream of headings and blocks into sections with heading paths.

Every reader (Markdown, reStructuredText, HTML, PDF outlines) emits the same two events, so the
rule for heading paths lives in one place: a heading's path is the headings above it with a lower
level, then itself. Text before the first heading, and documents without a top-level heading,
hang under the document's title.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.knowledge.document import Block, Section

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_ANCHOR = re.compile(r"\s*\{#[^}]*\}\s*$")
_MARKUP = re.compile(r"[*`]+")


def clean_heading(text: str) -> str:
    """Heading text without links, emphasis, code marks or `{#anchor}` suffixes."""
    text = _ANCHOR.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _MARKUP.sub("", text)
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Heading:
    level: int
    text: str


Event = Heading | Block


def first_title(events: Iterable[Event]) -> str | None:
    """The first level-1 heading, which names the page when there is one."""
    for event in events:
        if isinstance(event, Heading) and event.level == 1 and clean_heading(event.text):
            return clean_heading(event.text)
    return None


def build_sections(events: Iterable[Event], title: str) -> tuple[Section, ...]:
    outline = OutlineBuilder(title)
    for event in events:
        if isinstance(event, Heading):
            outline.heading(event.level, event.text)
        else:
            outline.block(event)
    return outline.sections()


class OutlineBuilder:
    def __init__(self, title: str) -> None:
        self.title = title
        self._stack: list[tuple[int, str]] = []
        self._path: tuple[str, ...] = (title,)
        self._blocks: list[Block] = []
        self._sections: list[Section] = []

    def heading(self, level: int, text: str) -> None:
        text = clean_heading(text)
        if not text:
            return
        self._flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        names = tuple(name for _, name in self._stack)
        # A page whose headings start below level 1 still needs its title in front.
        self._path = names if self._stack[0][0] == 1 else (self.title, *names)

    def block(self, block: Block) -> None:
        if block.text.strip():
            self._blocks.append(block)

    def sections(self) -> tuple[Section, ...]:
        self._flush()
        return tuple(self._sections)

    def _flush(self) -> None:
        if not self._blocks:
            return
        if self._sections and self._sections[-1].path == self._path:
            # Text before an H1 that repeats the page title belongs with it.
            last = self._sections.pop()
            self._blocks[:0] = last.blocks
        self._sections.append(Section(self._path, tuple(self._blocks)))
        self._blocks = []
