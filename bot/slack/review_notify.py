"""Slack told about a decision taken outside Slack (`chatbot review`): the review card is updated
and the author gets the same direct message a click on the card would have sent. Synchronous, for
a command-line process that has no event loop; a failure is reported, never raised."""

from __future__ import annotations

import asyncio
import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.review.desk import Outcome
from bot.review.news import Tell
from bot.slack import review_blocks

log = logging.getLogger(__name__)
PLATFORM = "slack"


def web_client(*, bot_token: str, api_url: str) -> WebClient:
    return WebClient(token=bot_token, base_url=api_url if api_url.endswith("/") else f"{api_url}/")


def tell_slack(client: WebClient, outcome: Outcome, *, approvals_required: int) -> str | None:
    """Update the card and, once decided, DM the author. Returns a problem to report, or None."""
    case = outcome.case
    correction = case.correction
    try:
        if correction.card_channel and correction.card_ref:
            card = review_blocks.review_card(case, approvals_required=approvals_required)
            client.chat_update(
                channel=correction.card_channel, ts=correction.card_ref, text=card.text, blocks=card.blocks
            )
        if outcome.decided and case.question.platform == PLATFORM:
            if correction.status == "approved":
                text = review_blocks.approved_note(case, in_use=outcome.indexed)
            else:
                text = review_blocks.rejected_note(case)
            opened = client.conversations_open(users=correction.author)
            client.chat_postMessage(channel=opened["channel"]["id"], text=text)
    except SlackApiError as exc:
        log.warning("Slack was not told about correction %s: %s", correction.id, exc.response.get("error"))
        return f"Slack answered {exc.response.get('error')}"
    except OSError as exc:  # unreachable
        log.warning("Slack was not told about correction %s: %s", correction.id, exc)
        return "Slack could not be reached"
    return None


def slack_news(client: WebClient, *, approvals_required: int) -> Tell:
    """The review card updated and a Slack author sent a DM, as `chatbot review` does (`tell_slack`),
    in a worker thread: that client is synchronous."""

    async def tell(outcome: Outcome) -> str | None:
        problem = await asyncio.to_thread(tell_slack, client, outcome, approvals_required=approvals_required)
        return None if problem is None else f"Slack was not told ({problem})"

    return tell
