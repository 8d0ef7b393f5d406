"""What a correction's author is told once reviewers decide: the same words on every platform.

Each platform hands in the question (and the reviewer's reason) already escaped and cut to its own
limits, and the reason already set as it shows a quotation: `bot.slack.review_blocks` and
`bot.teams.review_notify` use these.
"""

from __future__ import annotations


def approved(question: str, *, in_use: bool) -> str:
    """`in_use`: the correction is in the knowledge base already, not only waiting for a retrain."""
    now = "I already use it when someone asks this." if in_use else "I'll learn it in my next update."
    return (
        f"Good news: a reviewer approved your correction to my answer to “{question}”. "
        f"{now} Thank you for teaching me!"
    )


def rejected(question: str, quoted_reason: str) -> str:
    """`quoted_reason`: the reviewer's reason, set off on lines of its own ("" when none was given)."""
    return (
        f"Thanks for suggesting a correction to my answer to “{question}”. "
        f"A reviewer decided not to use it this time, and said:{quoted_reason}\n"
        "If you think they missed something, reply to my answer with more detail. Thanks for helping!"
    )
