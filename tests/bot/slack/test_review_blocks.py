"""The review card and modals are valid Block Kit within Slack's limits, whatever people wrote."""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.slack.review_blocks import ReviewClick, edit_modal, reject_modal, review_card
from feedback.models import Answer, Correction, Question, Review
from feedback.queries import ReviewCase

LONG = "word <@U1> & <!channel> " * 400  # ~9,600 characters, with markup that must not ping anyone


def case(status: str = "pending", reviews: tuple[Review, ...] = ()) -> ReviewCase:
    sources = [
        {"id": f"p{i}", "title": f"Page {i} > Section", "source": f"p{i}.md", "url": None} for i in range(12)
    ]
    sources[0]["url"] = "https://wiki.example/page?a=1|b"
    return ReviewCase(
        correction=Correction(id=7, answer_id=1, author="U2", text=LONG, status=status, stale_reason=LONG),
        answer=Answer(
            id=1, question_id=1, platform="slack", text=LONG, adapter="base", confidence=0.31, sources=sources
        ),
        question=Question(id=1, platform="slack", user_id="U1", text=LONG, created_at=datetime.now(UTC)),
        reviews=list(reviews),
        downvotes=3,
    )


def validate(blocks: list[dict]) -> None:
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000


def test_a_pending_card_is_valid_escaped_and_has_the_buttons() -> None:
    card = review_card(case(), approvals_required=2)
    validate(card.blocks)
    text = str(card.blocks)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "confidence 0.31" in text and "Back for review" in text and "0 of 2 approvals" in text
    contexts = [b for b in card.blocks if b["type"] == "context"]
    why = contexts[0]["elements"][0]["text"]
    assert why == "*Queued because:* a person suggested a correction, 3 👎"
    sources = next(b for b in contexts if b["elements"][0]["text"] == "*Retrieved*")
    assert len(sources["elements"]) == 6  # the heading and the first five sources
    assert "%7Cb" in sources["elements"][1]["text"]  # a | in a URL cannot end the link early
    assert [b["type"] for b in card.blocks][-1] == "actions"


def test_a_decided_card_has_no_buttons_and_says_who_decided() -> None:
    rejection = Review(correction_id=7, reviewer="R1", decision="reject", reason="No: it is 26 days.")
    card = review_card(case("rejected", (rejection,)), approvals_required=1)
    validate(card.blocks)
    assert "actions" not in [b["type"] for b in card.blocks]
    assert "Rejected* by <@R1>: No: it is 26 days." in str(card.blocks)
    assert "Back for review" not in str(card.blocks)


def test_the_modals_are_valid_for_any_correction_id_and_text() -> None:
    click = ReviewClick("review_edit", 123456789, "R1", "C1", "1700000000.000100", "trigger")
    for view in (edit_modal(click, LONG), reject_modal(click)):
        View(**view).validate_json()
