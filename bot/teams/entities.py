"""The message entities Teams reads beside a bot's text: `streaminfo` (a streamed message's id, kind
and order) and the schema.org `Message` that labels an answer AI-generated and carries its
citations (`Claim`s, shown as pills where the text says `[1]`).

botbuilder 4.17's `Entity` serializes only `type`: each entity here declares its own fields so they
reach the wire.
"""

from __future__ import annotations

from typing import Any, ClassVar

from botbuilder.schema import Entity

from bot.pipeline import Source

MAX_CITATIONS = 20  # Teams refuses a message with more
NAME_LIMIT, ABSTRACT_LIMIT = 80, 160


class StreamInfo(Entity):
    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        "type": {"key": "type", "type": "str"},
        "stream_id": {"key": "streamId", "type": "str"},
        "stream_type": {"key": "streamType", "type": "str"},
        "stream_sequence": {"key": "streamSequence", "type": "int"},
    }

    def __init__(
        self, *, stream_type: str, stream_id: str | None = None, stream_sequence: int | None = None
    ) -> None:
        super().__init__(type="streaminfo")
        self.stream_id = stream_id
        self.stream_type = stream_type
        self.stream_sequence = stream_sequence


class AIMessage(Entity):
    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        "type": {"key": "type", "type": "str"},
        "at_type": {"key": "@type", "type": "str"},
        "at_context": {"key": "@context", "type": "str"},
        "at_id": {"key": "@id", "type": "str"},
        "additional_type": {"key": "additionalType", "type": "[str]"},
        "citation": {"key": "citation", "type": "[object]"},
    }

    def __init__(self, citations: list[dict[str, Any]]) -> None:
        super().__init__(type="https://schema.org/Message")
        self.at_type = "Message"
        self.at_context = "https://schema.org"
        self.at_id = ""
        self.additional_type = ["AIGeneratedContent"]
        self.citation = citations or None


def citations(sources: list[Source]) -> list[dict[str, Any]]:
    """One `Claim` a source, numbered from 1 as the `[n]` markers in the text are. A source without
    a web address still shows its title, with the page's path as the abstract."""
    claims = []
    for position, source in enumerate(sources[:MAX_CITATIONS], start=1):
        appearance: dict[str, Any] = {
            "@type": "DigitalDocument",
            "name": _cut(source.title or source.source, NAME_LIMIT),
            "abstract": _cut(source.source, ABSTRACT_LIMIT),
        }
        if (source.url or "").startswith(("https://", "http://")):
            appearance["url"] = source.url
        claims.append({"@type": "Claim", "position": position, "appearance": appearance})
    return claims


def markers(count: int) -> str:
    """The `[1][2]…` that place the citation pills, for `count` sources."""
    return "".join(f"[{n}]" for n in range(1, min(count, MAX_CITATIONS) + 1))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
