"""Who is told about a review decision taken in the bot process: each platform's notifier as one
async callable, a `Tell`, that the browser console (and, for authors outside Slack, the Slack
review cards) call once a decision is recorded.

    tell = together(slack_news(client, approvals_required=1), teams_news(adapter, app_id=app_id))
    problem = await tell(outcome)  # None, or for the reviewer: "Slack was not told (...)"

Notifiers log their own failures and never raise: the decision is recorded before anyone is told.
`chatbot review` tells the same people from its own process (`chatbot.cmd_review`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from botbuilder.core import CloudAdapterBase
from slack_sdk import WebClient

from bot.curation import Outcome
from bot.slack.review_notify import tell_slack
from bot.teams.review_notify import tell_teams

Tell = Callable[[Outcome], Awaitable[str | None]]


def slack_news(client: WebClient, *, approvals_required: int) -> Tell:
    """The review card updated and a Slack author sent a DM, as `chatbot review` does (`tell_slack`),
    in a worker thread: that client is synchronous."""

    async def tell(outcome: Outcome) -> str | None:
        problem = await asyncio.to_thread(tell_slack, client, outcome, approvals_required=approvals_required)
        return None if problem is None else f"Slack was not told ({problem})"

    return tell


def teams_news(adapter: CloudAdapterBase, *, app_id: str) -> Tell:
    """A Teams author sent the note in the chat they suggested the correction in (`tell_teams`)."""

    async def tell(outcome: Outcome) -> str | None:
        problem = await tell_teams(adapter, outcome, app_id=app_id)
        return None if problem is None else f"its author was not told in Teams ({problem})"

    return tell


def together(*tells: Tell | None) -> Tell | None:
    """One `Tell` that runs each given one; its problems joined. None when none is given."""
    present = [tell for tell in tells if tell is not None]
    if not present:
        return None

    async def tell(outcome: Outcome) -> str | None:
        problems = await asyncio.gather(*(each(outcome) for each in present))
        return "; ".join(p for p in problems if p) or None

    return tell
