"""The review queue in Slack, both ways, as pure functions: a correction as a review card (question,
the bot's answer and its sources, the proposed correction, Approve / Edit / Reject, and the votes so
far), the Edit and Reject modals, the notes to the correction's author; and the clicks and modal
submissions read back into plain values.

Every piece of text from people or the model is escaped and cut to Slack's limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.review import notes as review_notes
from bot.slack import fields
from bot.slack.blocks import INPUT_LIMIT, SECTION_LIMIT, Block, Reply, escape
from feedback.queries import ReviewCase

APPROVE_ACTION = "review_approve"
EDIT_ACTION = "review_edit"
REJECT_ACTION = "review_reject"
DRAFT_ACTION = "review_draft"  # a sampled case: keep the teacher's draft
ACTIONS = (APPROVE_ACTION, EDIT_ACTION, REJECT_ACTION, DRAFT_ACTION)
EDIT_VIEW = "review_edit"
REJECT_VIEW = "review_reject"
VIEW_BLOCK = "review"
VIEW_INPUT = "text"
STALE_MODAL = (
    "Sorry, this form can't be sent any more. Close it and use the buttons on the review card again."
)
MAX_SOURCES = 5
REASON_LIMIT = 1000

Payload = dict[str, Any]


@dataclass(frozen=True)
class ReviewClick:
    """A reviewer's click on a card's button."""

    action: str  # one of ACTIONS
    correction_id: int
    user_id: str
    channel: str
    message_ts: str
    trigger_id: str


@dataclass(frozen=True)
class ReviewSubmission:
    """A submitted Edit or Reject modal: the edited text, or the reason."""

    view: str  # EDIT_VIEW or REJECT_VIEW
    correction_id: int
    user_id: str
    text: str
    channel: str
    message_ts: str


# --- out ----------------------------------------------------------------------------------------


def _cut(text: str, limit: int = SECTION_LIMIT - 100) -> str:
    """`text` escaped, cut with an ellipsis so that the escaped form fits in `limit` characters."""
    escaped = escape(text.strip())
    if len(escaped) <= limit:
        return escaped
    out, size = [], 0
    for char in text.strip():
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip() + "…"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(*lines: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": line} for line in lines]}


def _source_line(number: int, source: dict[str, Any]) -> str:
    title = escape(str(source.get("title") or source.get("source") or "?"))
    url = str(source.get("url") or "")
    if url.startswith(("https://", "http://")):
        return f"{number}. <{escape(url).replace('|', '%7C')}|{title}>"
    return f"{number}. {title} · _{escape(str(source.get('source', '')))}_"


def _reviewer(reviewer: str) -> str:
    """A Slack user as a mention; a console reviewer (`console:NAME`) by name: not a Slack user."""
    return escape(reviewer) if reviewer.startswith("console:") else f"<@{reviewer}>"


def _status_line(case: ReviewCase, approvals_required: int) -> str:
    correction = case.correction
    if correction.status == "approved":
        who = ", ".join(_reviewer(r) for r in case.approvals)
        return f":white_check_mark: *Approved* by {who}" if who else ":white_check_mark: *Approved*"
    if correction.status == "rejected":
        rejection = next((r for r in case.reviews if r.decision == "reject"), None)
        if rejection is None:
            return ":x: *Rejected*"
        reason = f": {_cut(rejection.reason, 500)}" if rejection.reason else ""
        return f":x: *Rejected* by {_reviewer(rejection.reviewer)}{reason}"
    who = "".join(f" {_reviewer(r)}" for r in case.approvals)
    votes = f"{len(case.approvals)} of {approvals_required} approvals"
    return f":hourglass_flowing_sand: Waiting for review: {votes}{who}"


def review_card(case: ReviewCase, *, approvals_required: int) -> Reply:
    """The card posted to the review channel, and what `chat.update` makes of it after each vote:
    the buttons go once the correction is decided."""
    correction, answer, question = case.correction, case.answer, case.question
    number = correction.id or 0
    confidence = "unknown" if answer.confidence is None else f"{answer.confidence:.2f}"
    sampled = correction.origin == "sampled"
    title = f"Answer #{number} to check" if sampled else f"Correction #{number} to review"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        _context(f"*Queued because:* {escape(', '.join(case.why))}"),
        _section(f"*Question* from <@{question.user_id}>\n{_cut(question.text)}"),
        _section(f"*My answer* (confidence {confidence}, :-1: {case.downvotes})\n{_cut(answer.text)}"),
    ]
    if answer.sources:
        lines = [_source_line(i, s) for i, s in enumerate(answer.sources[:MAX_SOURCES], start=1)]
        blocks.append(_context("*Retrieved*", *lines))
    if not sampled:
        blocks.append(_section(f"*Proposed correction* by <@{correction.author}>\n{_cut(correction.text)}"))
    elif correction.draft:
        blocks.append(
            _section(
                f"*Draft* by {escape(correction.draft_model or 'the teacher')}\n{_cut(correction.draft)}"
            )
        )
    if sampled and case.disagreement:
        said = "; ".join(f"{', '.join(_reviewer(r) for r in who)}: {what}" for what, who in case.kept.items())
        blocks.append(_context(f":warning: *Reviewers disagree* ({said}): another review decides."))
    if correction.stale_reason and correction.status == "pending":
        blocks.append(_context(f":warning: *Back for review.* {_cut(correction.stale_reason, 500)}"))
    blocks.append(_context(_status_line(case, approvals_required)))
    if correction.status == "pending":
        buttons = _buttons(number, sampled=sampled, draft=bool(correction.draft))
        blocks.append({"type": "actions", "block_id": f"review_{number}", "elements": buttons})
    text = f"Correction #{number} to review: {_cut(question.text, 200)}"
    return Reply(text=text, blocks=blocks)


def _buttons(correction_id: int, *, sampled: bool = False, draft: bool = False) -> list[Block]:
    """Approve, Edit, Reject; on a sampled case Approve keeps the bot's answer, and a draft adds
    a button that keeps the draft."""

    def button(action: str, label: str, style: str | None = None) -> Block:
        element: Block = {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": str(correction_id),
        }
        if style:
            element["style"] = style
        return element

    buttons = [button(APPROVE_ACTION, "The answer is right" if sampled else "Approve", "primary")]
    if sampled and draft:
        buttons.append(button(DRAFT_ACTION, "The draft is right"))
    return [*buttons, button(EDIT_ACTION, "Edit"), button(REJECT_ACTION, "Reject", "danger")]


def _modal(
    *, callback_id: str, click: ReviewClick, title: str, submit: str, label: str, element: Block
) -> Payload:
    meta = {"correction_id": click.correction_id, "channel": click.channel, "ts": click.message_ts}
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": VIEW_BLOCK,
                "label": {"type": "plain_text", "text": label},
                "element": {
                    "type": "plain_text_input",
                    "action_id": VIEW_INPUT,
                    "multiline": True,
                    **element,
                },
            }
        ],
    }


def edit_modal(click: ReviewClick, text: str) -> Payload:
    """Edit: the proposed correction, ready to be improved; submitting approves the edited text."""
    return _modal(
        callback_id=EDIT_VIEW,
        click=click,
        title="Edit correction",  # a modal title holds 24 characters
        submit="Approve",
        label=f"Correction #{click.correction_id}, as it should be",
        element={"max_length": INPUT_LIMIT, "initial_value": text[:INPUT_LIMIT]},
    )


def reject_modal(click: ReviewClick) -> Payload:
    return _modal(
        callback_id=REJECT_VIEW,
        click=click,
        title="Reject correction",
        submit="Reject",
        label=f"Why reject correction #{click.correction_id}? (the author is told)",
        element={"max_length": REASON_LIMIT},
    )


def approved_note(case: ReviewCase, *, in_use: bool) -> str:
    return review_notes.approved(_cut(case.question.text, 300), in_use=in_use)


def rejected_note(case: ReviewCase) -> str:
    rejection = next((r for r in case.reviews if r.decision == "reject"), None)
    reason = f"\n>{_cut(rejection.reason, 500)}" if rejection and rejection.reason else ""
    return review_notes.rejected(_cut(case.question.text, 300), reason)


# --- in -----------------------------------------------------------------------------------------


def to_click(body: Payload) -> ReviewClick | None:
    """A click on a review card's button; None for anything else (or a click missing its fields)."""
    user = fields.user_id(body)
    container = fields.obj(body.get("container"))
    for action in fields.items(body.get("actions")):
        correction_id = fields.digits_id(action.get("value"))
        if action.get("action_id") in ACTIONS and correction_id is not None and user:
            return ReviewClick(
                action=action["action_id"],
                correction_id=correction_id,
                user_id=user,
                channel=fields.text(fields.obj(body.get("channel")).get("id"))
                or fields.text(container.get("channel_id")),
                message_ts=fields.text(container.get("message_ts")),
                trigger_id=fields.text(body.get("trigger_id")),
            )
    return None


def to_submission(body: Payload) -> ReviewSubmission | None:
    """A submitted Edit or Reject modal; None when its metadata names no correction."""
    view = fields.obj(body.get("view"))
    meta = fields.metadata(view.get("private_metadata"))
    correction_id = fields.row_id(meta.get("correction_id"))
    user = fields.user_id(body)
    if correction_id is None or not user:
        return None
    text = fields.input_value(view, VIEW_BLOCK, VIEW_INPUT)
    return ReviewSubmission(
        view=fields.text(view.get("callback_id")),
        correction_id=correction_id,
        user_id=user,
        text=text.strip(),
        channel=fields.text(meta.get("channel")),
        message_ts=fields.text(meta.get("ts")),
    )


def submission_error(submission: ReviewSubmission) -> str | None:
    """What to show under the text box, or None when the submission can be recorded."""
    if submission.text:
        return None
    if submission.view == REJECT_VIEW:
        return "Please say why, so the author can learn from it."
    return "The corrected answer can't be empty."
