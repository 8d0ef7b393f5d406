"""One answer streamed into its thread with Slack's streaming methods: `chat.startStream` with the
first text, `chat.appendStream` at most once per `interval` seconds with what came since, and
`chat.stopStream` with the sources and feedback controls below the text.

Slack gives no rate for appends beyond their tier (about 100 a minute per workspace), and a model
writes several tokens a second, so text is buffered and sent once a second. Any failure of Slack's
(rate limits included) stops the stream quietly: `broken` is set, the text keeps being collected,
and the caller delivers the whole answer another way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks import Block, escape

log = logging.getLogger(__name__)
MARKDOWN_LIMIT = 12_000  # characters of markdown_text one call takes


class AnswerStream:
    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        team_id: str = "",
        user_id: str = "",
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.channel, self.thread_ts = channel, thread_ts
        self.team_id, self.user_id = team_id, user_id
        self.interval = interval
        self.clock = clock
        self.ts: str | None = None  # the streamed message's, once started
        self.broken = False
        self.text = ""  # everything added, sent or not
        self._pending = ""
        self._sent_at = float("-inf")

    async def add(self, text: str) -> None:
        """Collect `text`; send what is pending when `interval` has passed since the last send."""
        self.text += text
        self._pending += escape(text)
        if not self.broken and self.clock() - self._sent_at >= self.interval:
            await self._send()

    async def finish(self, blocks: list[Block], metadata: dict[str, Any] | None = None) -> bool:
        """Send the rest and stop the stream with `blocks` under the text. False where the stream
        broke, at any point: the message, if any, may hold only part of the answer."""
        while not self.broken and (self._pending or self.ts is None):
            await self._send()
        if self.broken or self.ts is None:
            return False
        try:
            await self.client.chat_stopStream(
                channel=self.channel, ts=self.ts, blocks=blocks, metadata=metadata
            )
        except Exception as exc:  # whatever Slack did, the answer goes out whole
            self._break("chat.stopStream", exc)
            return False
        return True

    async def _send(self) -> None:
        piece, self._pending = self._pending[:MARKDOWN_LIMIT], self._pending[MARKDOWN_LIMIT:]
        try:
            if self.ts is None:
                response = await self.client.chat_startStream(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    markdown_text=piece or None,
                    recipient_team_id=self.team_id or None,
                    recipient_user_id=self.user_id or None,
                )
                self.ts = response.get("ts")
                if not self.ts:
                    self.broken = True
                    log.warning("chat.startStream in %s gave no ts: the answer goes out whole", self.channel)
                    return
            elif piece:
                await self.client.chat_appendStream(channel=self.channel, ts=self.ts, markdown_text=piece)
        except Exception as exc:  # whatever Slack did, the answer goes out whole
            self._break("chat.startStream" if self.ts is None else "chat.appendStream", exc)
            return
        self._sent_at = self.clock()

    def _break(self, method: str, exc: Exception) -> None:
        self.broken = True
        reason = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
        log.warning("%s in %s failed (%s): the answer goes out whole", method, self.channel, reason)
