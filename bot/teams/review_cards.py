"""The review card in Teams: one case of the review queue as an Adaptive Card, with what the Slack
card shows (why it was queued, the question, the bot's answer, what was retrieved, the proposed
correction or the teacher's draft, a disagreement) and Action.Execute buttons that decide it. Each
decision is answered with the next case, so a reviewer works through the queue in one card. Pure
functions."""

from __future__ import annotations

from typing import Any

from bot.teams.cards import CARD_VERSION, Card, source_line, text_block
from bot.teams.translate import REVIEW_REASON_INPUT as REASON_INPUT
from bot.teams.translate import REVIEW_TEXT_INPUT as TEXT_INPUT
from bot.teams.translate import REVIEW_VERB
from feedback.queries import ReviewCase

TEXT_LIMIT = 4000
REASON_LIMIT = 1000
SHOWN_LIMIT = 3000
MAX_SOURCES = 5
QUEUE_EMPTY = "Nothing is waiting for your review."


def _cut(text: str, limit: int = SHOWN_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _status(case: ReviewCase, approvals_required: int) -> str:
    status = case.correction.status
    if status == "approved":
        return f"✅ Approved by {', '.join(case.approvals) or 'reviewers'}"
    if status == "rejected":
        rejection = next((r for r in case.reviews if r.decision == "reject"), None)
        reason = f": {_cut(rejection.reason, 300)}" if rejection and rejection.reason else ""
        return "❌ Rejected" + reason
    return f"⏳ Waiting for review: {len(case.approvals)} of {approvals_required} approvals"


def _execute(title: str, data: dict[str, Any], *, style: str | None = None) -> Card:
    action: Card = {"type": "Action.Execute", "title": title, "verb": REVIEW_VERB, "data": data}
    if style:
        action["style"] = style
    return action


def _form(title: str, input_id: str, label: str, value: str, limit: int, data: dict[str, Any]) -> Card:
    """A ShowCard holding one required text box and the button that sends it."""
    field = {
        "type": "Input.Text",
        "id": input_id,
        "label": label,
        "isMultiline": True,
        "isRequired": True,
        "errorMessage": "Write it first.",
        "maxLength": limit,
        "value": value[:limit],
    }
    card = {"type": "AdaptiveCard", "body": [field], "actions": [_execute(f"Send: {title}", data)]}
    return {"type": "Action.ShowCard", "title": title, "card": card}


def actions(case: ReviewCase) -> list[Card]:
    """On a sampled case Approve keeps the bot's answer and a draft adds "The draft is right"; Edit
    starts from the draft (or the proposed correction); Reject asks why; Skip shows the next case."""
    correction = case.correction
    number = correction.id or 0
    sampled = correction.origin == "sampled"

    def data(decision: str) -> dict[str, Any]:
        return {"action": REVIEW_VERB, "correction_id": number, "decision": decision}

    buttons = [_execute("The bot was right" if sampled else "Approve", data("approve"), style="positive")]
    if sampled and correction.draft:
        buttons.append(_execute("The draft is right", data("draft"), style="positive"))
    start = (correction.draft or case.answer.text) if sampled else correction.text
    buttons.append(_form("Edit", TEXT_INPUT, "The right answer", start, TEXT_LIMIT, data("edit")))
    buttons.append(_form("Reject", REASON_INPUT, "Why is it rejected?", "", REASON_LIMIT, data("reject")))
    buttons.append(_execute("Skip", data("skip")))
    return buttons


def case_card(case: ReviewCase, *, approvals_required: int, note: str | None = None) -> Card:
    """The case, with buttons while it is pending; `note` (what the last decision did) on top."""
    correction, answer, question = case.correction, case.answer, case.question
    number = correction.id or 0
    sampled = correction.origin == "sampled"
    confidence = "unknown" if answer.confidence is None else f"{answer.confidence:.2f}"
    body: list[Card] = []
    if note:
        body.append(text_block(note, isSubtle=True, size="Small"))
    title = f"Answer #{number} to check" if sampled else f"Correction #{number} to review"
    body += [
        text_block(title, weight="Bolder", size="Medium"),
        text_block(f"**Queued because:** {', '.join(case.why)}", size="Small"),
        text_block(f"**Question**\n\n{_cut(question.text)}"),
        text_block(f"**My answer** (confidence {confidence}, 👎 {case.downvotes})\n\n{_cut(answer.text)}"),
    ]
    if answer.sources:
        body.append(text_block("**Retrieved**", size="Small"))
        for i, raw in enumerate(answer.sources[:MAX_SOURCES], start=1):
            line = source_line(
                i, title=str(raw.get("title") or ""), source=str(raw.get("source", "")), url=raw.get("url")
            )
            body.append(text_block(line, size="Small", isSubtle=True, spacing="None"))
    if not sampled:
        body.append(text_block(f"**Proposed correction**\n\n{_cut(correction.text)}"))
    elif correction.draft:
        body.append(
            text_block(f"**Draft** by {correction.draft_model or 'the teacher'}\n\n{_cut(correction.draft)}")
        )
    if sampled and case.disagreement:
        said = "; ".join(f"{', '.join(who)}: {what}" for what, who in case.kept.items())
        body.append(
            text_block(f"⚠️ **Reviewers disagree** ({said}): another review decides.", color="Warning")
        )
    if correction.stale_reason and correction.status == "pending":
        body.append(
            text_block(f"⚠️ **Back for review.** {_cut(correction.stale_reason, 500)}", color="Warning")
        )
    body.append(text_block(_status(case, approvals_required), size="Small"))
    card: Card = {"type": "AdaptiveCard", "version": CARD_VERSION, "body": body}
    if correction.status == "pending":
        card["actions"] = actions(case)
    return card


def empty_card(note: str | None = None) -> Card:
    body = [text_block(note, isSubtle=True, size="Small")] if note else []
    body.append(text_block(QUEUE_EMPTY, weight="Bolder"))
    return {"type": "AdaptiveCard", "version": CARD_VERSION, "body": body}


def card_response(card: Card) -> Card:
    """Body of the invoke response that replaces the card the reviewer clicked on."""
    return {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive", "value": card}
