"""Turning one sequence's tokens into text as they arrive, and noticing stop strings.

The whole sequence is decoded each step (cheap at chat lengths) so the text never depends on how
it was split into deltas: the streamed pieces always concatenate to the non-streamed answer. A
delta holds back what might still change: a trailing incomplete UTF-8 character, and the last
few characters that could be the start of a stop string (vLLM holds those back too).
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = "\ufffd"  # what a byte-level BPE decodes a partial UTF-8 character to


class TextTracker:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._holdback = max((len(s) for s in self._stop), default=1) - 1
        self._ids: list[int] = []
        self._checked = 0  # characters already searched for stop strings
        self._sent = 0  # characters already handed out as deltas
        self.text = ""

    def add(self, token: int) -> str | None:
        """Append a token; return the stop string it completed, if any (the text is then cut before it)."""
        self._ids.append(token)
        self.text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if not self._stop:
            return None
        start = max(0, self._checked - self._holdback)
        hits = [(index, s) for s in self._stop if (index := self.text.find(s, start)) >= 0]
        self._checked = len(self.text)
        if not hits:
            return None
        index, stop = min(hits)
        self.text = self.text[:index]
        return stop

    def delta(self, *, finished: bool) -> str:
        """The text not handed out yet, minus what may still change unless the sequence is finished."""
        end = len(self.text)
        if not finished:
            end -= self._holdback
            while end > self._sent and self.text[end - 1] == _INCOMPLETE:
                end -= 1
        if end <= self._sent:
            return ""
        piece = self.text[self._sent : end]
        self._sent = end
        return piece
