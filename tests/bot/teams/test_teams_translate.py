"""The pure translation functions: Teams activities in, questions and votes out; answers out as cards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import Activity

from bot.pipeline import Answer, Source
from bot.teams import cards, translate
from tests.support.teams_activities import (
    ADA,
    BOT_ID,
    CHANNEL,
    GRACE,
    PERSONAL,
    TENANT,
    card_execute,
    card_submit,
    channel_thread,
    feedback_invoke,
    group_chat,
    message,
    reaction,
)

URL = "https://smba.trafficmanager.net/emea/"


def activity(payload: dict[str, Any]) -> Activity:
    return Activity().deserialize(payload)


def answer(answer_id: int | None = 7, text: str = "27 days.", sources: list[Source] | None = None) -> Answer:
    return Answer(
        text=text, sources=sources or [], adapter="kb-v1", confidence=0.9, covered=True, answer_id=answer_id
    )


# --- questions ---------------------------------------------------------------------------------


def test_a_personal_message_is_a_question_from_the_aad_user() -> None:
    question = translate.to_question(activity(message("How many days?", service_url=URL)))
    assert (question.platform, question.text, question.user_id) == ("teams", "How many days?", ADA.aad_id)
    assert (question.workspace, question.channel) == (TENANT, PERSONAL)


def test_the_bots_mention_is_removed_and_other_mentions_kept() -> None:
    payload = message("ask <at>Grace Hopper</at> &amp; me&nbsp;about leave", service_url=URL, mention=True)
    payload["entities"].append(
        {
            "type": "mention",
            "text": "<at>Grace Hopper</at>",
            "mentioned": {"id": GRACE.teams_id, "name": "Grace Hopper"},
        }
    )
    assert translate.plain_text(activity(payload)) == "ask @Grace Hopper & me about leave"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (message("hi", service_url=URL), True),
        (message("hi", service_url=URL, conversation=group_chat()), False),
        (message("hi", service_url=URL, conversation=group_chat(), mention=True), True),
        (message("hi", service_url=URL, conversation=channel_thread("1"), mention=True), True),
        (card_submit("1", {"action": "suggestCorrection", "answer_id": 1}, service_url=URL), False),
    ],
)
def test_which_messages_are_questions(payload: dict[str, Any], expected: bool) -> None:
    assert translate.is_question(activity(payload)) is expected


def test_a_mention_of_someone_else_in_a_group_is_not_for_the_bot() -> None:
    payload = message("hi", service_url=URL, conversation=group_chat(), mention=True)
    payload["entities"][0]["mentioned"]["id"] = GRACE.teams_id
    assert not translate.is_question(activity(payload))


def test_channel_thread_ids() -> None:
    parsed = activity(message("hi", service_url=URL, conversation=channel_thread("1718"), mention=True))
    assert translate.conversation_key(parsed) == CHANNEL
    assert translate.thread_of(parsed) == "1718"


def test_long_ids_are_fitted_to_the_store_and_stay_stable() -> None:
    long = "a:" + "x" * 200
    assert translate.fit("short") == "short"
    assert len(translate.fit(long)) <= 128 and translate.fit(long) == translate.fit(long)
    assert translate.fit(long) != translate.fit(long + "y")


def test_without_an_aad_id_the_teams_id_is_the_user() -> None:
    payload = message("hi", service_url=URL)
    del payload["from"]["aadObjectId"]
    assert translate.user_id(activity(payload)) == ADA.teams_id


def test_delivery_keys_differ_by_conversation_and_kind() -> None:
    a = activity(message("hi", service_url=URL, id="100"))
    b = activity(message("hi", service_url=URL, id="100", conversation=group_chat()))
    assert translate.delivery_key(a) == translate.delivery_key(
        activity(message("x", service_url=URL, id="100"))
    )
    assert translate.delivery_key(a) != translate.delivery_key(b)
    assert len(translate.delivery_key(a)) <= 255


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("retrain", "retrain"),
        ("Status", "status"),
        ("/rollback", "rollback"),
        ("adapters", "adapters"),
        ("status of my expense claim?", None),
        ("status of the leave policy for part time staff in 2025", None),
        ("how do I retrain my team?", None),
        ("", None),
    ],
)
def test_admin_commands(text: str, command: str | None) -> None:
    assert translate.admin_command(text) == command


# --- feedback ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ('{"feedbackText":"too long"}', "too long"),
        ({"feedbackText": "as an object"}, "as an object"),
        ("plain words, not JSON", "plain words, not JSON"),
        ('{"feedbackText":""}', ""),
        (None, ""),
        ("[1]", "[1]"),
    ],
)
def test_feedback_text(raw: object, text: str) -> None:
    assert translate.feedback_text(raw) == text


def test_a_feedback_click_is_a_vote_on_the_message_it_is_under() -> None:
    [vote] = translate.to_feedback(activity(feedback_invoke("555", "dislike", service_url=URL, text="wrong")))
    assert vote == translate.Feedback(ADA.aad_id, -1, "teams_feedback", PERSONAL, "555", comment="wrong")


def test_an_unknown_feedback_reaction_is_no_vote() -> None:
    payload = feedback_invoke("555", "like", service_url=URL)
    payload["value"]["actionValue"]["reaction"] = "meh"
    assert translate.to_feedback(activity(payload)) == []


def test_reactions_added_and_removed() -> None:
    payload = reaction("555", service_url=URL, added=["like", "heart"], removed=["like"])
    votes = translate.to_feedback(activity(payload))
    assert [(v.value, v.withdrawn, v.source) for v in votes] == [
        (1, False, "reaction"),
        (1, True, "reaction"),
    ]


def test_feedback_without_the_message_it_is_on_is_no_vote() -> None:
    payload = reaction("555", service_url=URL, added=["like"])
    del payload["replyToId"]
    assert translate.to_feedback(activity(payload)) == []


# --- corrections -------------------------------------------------------------------------------


def test_execute_and_submit_read_the_same_correction() -> None:
    data = {"action": "suggestCorrection", "answer_id": 7, "correction": " 30 days. "}
    for payload in (card_execute("9", data, service_url=URL), card_submit("9", data, service_url=URL)):
        assert translate.to_correction(activity(payload)) == translate.CorrectionSubmission(
            7, ADA.aad_id, "30 days."
        )


def test_a_correction_with_a_bad_answer_id_has_none() -> None:
    data = {"action": "suggestCorrection", "answer_id": "seven", "correction": "x"}
    submission = translate.to_correction(activity(card_execute("9", data, service_url=URL)))
    assert submission is not None and submission.answer_id is None


def test_other_card_verbs_are_not_corrections() -> None:
    payload = card_execute("9", {"action": "somethingElse"}, service_url=URL)
    assert not translate.is_correction(activity(payload))


# --- cards -------------------------------------------------------------------------------------


def test_sources_are_links_when_they_have_a_web_address() -> None:
    sources = [
        Source("Leave [2025]", "hr/leave.md", "https://wiki.example/a b(c)", 0.9, "p1"),
        Source("", "hr/expenses.md", None, 0.5, "p2"),
        Source("Local", "hr/local.md", "file:///etc/passwd", 0.4, "p3"),
    ]
    texts = [b["text"] for b in cards.answer_card(answer(sources=sources))["body"]]
    assert "1. [Leave \\[2025\\]](https://wiki.example/a%20b%28c%29)" in texts
    assert "2. hr/expenses.md · _hr/expenses.md_" in texts
    assert "3. Local · _hr/local.md_" in texts


def test_an_unrecorded_answer_has_no_feedback_controls() -> None:
    reply = cards.to_reply(answer(answer_id=None))
    assert reply.channel_data is None
    assert "actions" not in reply.attachments[0].content


def test_a_very_long_answer_is_cut() -> None:
    card = cards.answer_card(answer(text="word " * 5000))
    assert len(card["body"][0]["text"]) <= cards.TEXT_LIMIT + 1


def test_admin_reply_with_a_chart_carries_it_inline(tmp_path: Path) -> None:
    chart = tmp_path / "loss.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    sent = cards.with_image("Retrain #3 promoted", chart)
    [image] = sent.attachments
    assert image.content_type == "image/png" and image.content_url.startswith("data:image/png;base64,")
    assert cards.with_image("no chart", tmp_path / "missing.png").attachments is None


def test_bot_id_constant_is_a_bot_id() -> None:
    assert BOT_ID.startswith("28:")
