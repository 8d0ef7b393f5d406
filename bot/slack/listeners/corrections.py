"""Corrections: "Suggest a correction" opens a modal holding the bot's answer; the edited text is
stored as a pending correction, posted to the review channel for reviewers (`listeners.review`), and
the person is thanked, ephemerally, in the answer's thread."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks, translate
from bot.slack.deps import Deps
from bot.slack.listeners.review import post_card
from bot.slack.notify import open_modal, tell
from feedback.errors import FeedbackError
from feedback.queries import ReviewCase

log = logging.getLogger(__name__)
Payload = dict[str, Any]


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(translate.CORRECTION_ACTION)
    async def on_suggest(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        click = translate.correction_request(body)
        if click is None:
            return
        async with deps.inflight.track():
            # A value no answer can have (out of range, not digits) is "not found" like a deleted one.
            place = None if click.answer_id is None else await deps.records.place(click.answer_id)
            if place is None or click.answer_id is None:
                await tell(
                    client,
                    channel=click.channel,
                    user=click.user_id,
                    thread_ts="",
                    text=blocks.MISSING_ANSWER,
                )
                return
            view = blocks.correction_modal(
                answer_id=click.answer_id,
                answer_text=place.text,
                channel=place.channel,
                thread_ts=place.thread_ts,
            )
            # The trigger id expires 3 s after the click: open the modal before anything else.
            await open_modal(
                client, trigger_id=click.trigger_id, view=view, user=click.user_id, channel=click.channel
            )

    @app.view(translate.CORRECTION_VIEW)
    async def on_submit(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        submission = translate.to_correction(body)
        if submission is None:
            log.warning("a correction modal without its answer id was submitted; nothing stored")
            await ack(response_action="errors", errors={translate.CORRECTION_BLOCK: blocks.STALE_MODAL})
            return
        problem = translate.correction_error(submission)
        if problem is not None:
            await ack(response_action="errors", errors={translate.CORRECTION_BLOCK: problem})
            return
        await ack()
        async with deps.inflight.track():
            case: ReviewCase | None = None
            try:
                if deps.review is not None:
                    case = await asyncio.to_thread(
                        deps.review.submit,
                        answer_id=submission.answer_id,
                        author=submission.user_id,
                        text=submission.text,
                    )
                else:
                    await deps.records.correct(
                        answer_id=submission.answer_id, author=submission.user_id, text=submission.text
                    )
            except FeedbackError as exc:
                log.warning("correction of answer %s not stored: %s", submission.answer_id, exc)
                text = str(exc)
            except Exception:  # acked already: the person hears of it here, or never
                log.exception("storing a correction of answer %s failed", submission.answer_id)
                text = blocks.CORRECTION_FAILED
            else:
                text = blocks.CORRECTION_THANKS
            await tell(
                client,
                channel=submission.channel,
                user=submission.user_id,
                thread_ts=submission.thread_ts,
                text=text,
            )
            if case is not None:
                await post_card(deps, client, case)
