"""One answer streamed into a personal chat with Teams' streaming protocol: an informative update
first (its id becomes the stream's), then typing activities carrying the whole text so far with a
`streaminfo` entity numbered in order, then the final message with the stream's id.

Teams takes one update a second and wants each one answered before the next, so text is buffered
and sent at most once per `interval`, awaited. Any refusal (Teams answers 403 when the person
stopped the stream or it ran past two minutes) ends streaming quietly: `broken` is set and the final
message goes out as an ordinary one, so the person still gets the whole answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from botbuilder.schema import Activity, ActivityTypes

from bot.teams.entities import StreamInfo
from bot.teams.replies import Replier

log = logging.getLogger(__name__)


class TeamsStream:
    def __init__(
        self, replier: Replier, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.replier = replier
        self.interval = interval
        self.clock = clock
        self.stream_id: str | None = None
        self.broken = False
        self.text = ""
        self._sequence = 0
        self._sent_text = ""
        self._sent_at = float("-inf")

    async def inform(self, text: str) -> None:
        """The informative update ("Searching…") that opens the stream."""
        await self._send(text, "informative")

    async def add(self, text: str) -> None:
        self.text += text
        if self.stream_id is not None and self.clock() - self._sent_at >= self.interval:
            await self._send(self.text, "streaming")

    async def finish(self, message: Activity) -> str | None:
        """Send `message` as the stream's final message (an ordinary one where the stream never
        opened or broke); the id it is shown under."""
        if self.stream_id is not None and not self.broken:
            message.entities = [
                *(message.entities or []),
                StreamInfo(stream_type="final", stream_id=self.stream_id),
            ]
        reply_id = await self.replier.send(message)
        if self.broken:
            return reply_id
        return reply_id or self.stream_id  # the streamed message is the one shown

    async def _send(self, text: str, kind: str) -> None:
        if self.broken or not text.strip() or text == self._sent_text:
            return
        self._sequence += 1
        info = StreamInfo(stream_type=kind, stream_id=self.stream_id, stream_sequence=self._sequence)
        try:
            reply_id = await self.replier.send(
                Activity(type=ActivityTypes.typing, text=text, entities=[info])
            )
        except Exception as exc:  # whatever Teams refused, the answer goes out whole at the end
            self.broken = True
            log.warning("Teams refused a streaming update (%s): the answer goes out whole", exc)
            return
        if self.stream_id is None:
            if not reply_id:
                self.broken = True
                return
            self.stream_id = reply_id
        self._sent_text, self._sent_at = text, self.clock()
