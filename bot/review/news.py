"""Who is told about a review decision taken in the bot process: each platform's notifier as one
async callable, a `Tell`, that the browser console (and, for authors outside Slack, the Slack
review cards) call once a decision is recorded.

    tell = together(slack_news(client, approvals_required=1), teams_news(adapter, app_id=app_id))
    problem = await tell(outcome)  # None, or for the reviewer: "Slack was not told (...)"

Each platform's notifier lives with the platform (`bot.slack.review_notify.slack_news`,
`bot.teams.review_notify.teams_news`). Notifiers log their own failures and never raise: the
decision is recorded before anyone is told. `chatbot review` tells the same people from its own
process (`chatbot.cmd_review`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.review.desk import Outcome

Tell = Callable[[Outcome], Awaitable[str | None]]


def together(*tells: Tell | None) -> Tell | None:
    """One `Tell` that runs each given one; its problems joined. None when none is given."""
    present = [tell for tell in tells if tell is not None]
    if not present:
        return None

    async def tell(outcome: Outcome) -> str | None:
        problems = await asyncio.gather(*(each(outcome) for each in present))
        return "; ".join(p for p in problems if p) or None

    return tell
