"""A Teams author told what reviewers decided about their correction, wherever it was decided (a
Slack review card, the browser console, `chatbot review`), in the words a Slack author gets by DM.

A Teams bot cannot start a chat with someone from their id alone, so the correction keeps the
conversation reference of the chat it was suggested in (`Correction.author_conversation`), and the
note is sent there in a proactive turn, as a reply to the suggestion: in a personal chat that is
simply the next message, in a channel it lands in the answer's thread. A failure is logged and
reported, never raised: the decision is recorded before anyone is told.
"""

from __future__ import annotations

import logging

from botbuilder.core import CloudAdapterBase, TurnContext
from msrest.exceptions import HttpOperationError

from bot.review import notes as review_notes
from bot.review.desk import Outcome
from bot.review.news import Tell
from bot.teams import access, cards, replies

log = logging.getLogger(__name__)
PLATFORM = "teams"
QUESTION_LIMIT = 300
REASON_LIMIT = 500


def concerns_teams(outcome: Outcome) -> bool:
    """Whether someone in Teams is waiting to hear about this decision."""
    case = outcome.case
    return (
        outcome.decided and case.question.platform == PLATFORM and bool(case.correction.author_conversation)
    )


def note(outcome: Outcome) -> str:
    """The approved or rejected note (with the reviewer's reason), in Teams' plain text."""
    case = outcome.case
    question = _cut(case.question.text, QUESTION_LIMIT)
    if case.correction.status == "approved":
        return review_notes.approved(question, in_use=outcome.indexed)
    rejection = next((r for r in case.reviews if r.decision == "reject"), None)
    reason = f"\n\n“{_cut(rejection.reason, REASON_LIMIT)}”\n" if rejection and rejection.reason else ""
    return review_notes.rejected(question, reason)


async def tell_teams(adapter: CloudAdapterBase, outcome: Outcome, *, app_id: str) -> str | None:
    """Send the author the note, if they suggested the correction in Teams and it is now decided.
    Returns a problem to report, or None."""
    if not concerns_teams(outcome):
        return None
    correction = outcome.case.correction
    assert correction.author_conversation is not None
    reference = replies.reference_from(correction.author_conversation)
    # A reference stored before replies were restricted may name any address: send only where a
    # reply to a new activity could go.
    if not access.reply_target_allowed(reference.service_url, loopback=not app_id):
        log.warning(
            "the Teams author of correction %s was not told: not a Bot Framework serviceUrl", correction.id
        )
        return "its chat's serviceUrl is not a Bot Framework service"
    failures: list[Exception] = []

    async def turn(context: TurnContext) -> None:
        # Caught here: the adapter's turn-error handler would send the author an apology instead.
        try:
            await replies.Replier(context, reference).send(cards.notice(note(outcome)))
        except Exception as exc:
            failures.append(exc)

    try:
        await adapter.continue_conversation(reference, turn, bot_app_id=app_id)
    except Exception as exc:  # no connector for the turn: credentials refused, a bad service URL
        failures.append(exc)
    if not failures:
        return None
    log.warning("the Teams author of correction %s was not told: %r", correction.id, failures[0])
    return _problem(failures[0])


def _problem(exc: Exception) -> str:
    if isinstance(exc, HttpOperationError):
        return f"Teams answered {getattr(exc.response, 'status_code', 'with an error')}"
    return "Teams could not be reached"


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def teams_news(adapter: CloudAdapterBase, *, app_id: str) -> Tell:
    """A Teams author sent the note in the chat they suggested the correction in (`tell_teams`)."""

    async def tell(outcome: Outcome) -> str | None:
        problem = await tell_teams(adapter, outcome, app_id=app_id)
        return None if problem is None else f"its author was not told in Teams ({problem})"

    return tell
