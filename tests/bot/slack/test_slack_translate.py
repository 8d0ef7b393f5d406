"""The Slack translation functions: pure, so tested with plain values."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.pipeline import Answer, Source
from bot.slack import blocks, translate
from bot.slack.blocks import MARKDOWN_LIMIT, escape, split_text, to_reply

BOT = "U0BOT"


def answer(text: str, sources: list[Source] | None = None, answer_id: int | None = 7) -> Answer:
    return Answer(
        text=text, sources=sources or [], adapter="kb-v1", confidence=0.9, covered=True, answer_id=answer_id
    )


def test_plain_text_reads_like_a_person_would() -> None:
    text = (
        "<@U0BOT> is <https://x.example/a?b=1&amp;c=2|the doc> right for <@U123|ana> "
        "in <#C42|general>? &lt;3 <!here>"
    )
    assert translate.plain_text(text, bot_user_id=BOT) == "is the doc right for @ana in #general? <3 @here"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("+1", 1),
        ("thumbsup", 1),
        ("+1::skin-tone-2", 1),
        ("thumbsup::skin-tone-6", 1),
        ("-1", -1),
        ("thumbsdown::skin-tone-4", -1),
        ("tada", None),
        ("heavy_plus_sign", None),
    ],
)
def test_reaction_values(name: str, value: int | None) -> None:
    assert translate.reaction_value(name) == value


def test_message_kinds() -> None:
    dm = {"type": "message", "user": "U1", "text": "hi", "ts": "2.0", "channel": "D1", "channel_type": "im"}
    in_thread = {**dm, "channel_type": "channel", "thread_ts": "1.0"}
    assert translate.message_kind(dm, bot_user_id=BOT) == "direct"
    assert translate.message_kind({**dm, "thread_ts": "1.0"}, bot_user_id=BOT) == "direct"
    assert translate.message_kind(in_thread, bot_user_id=BOT) == "follow_up"
    # app_mention answers these; answering the message event too would answer twice
    assert translate.message_kind({**in_thread, "text": "<@U0BOT> and?"}, bot_user_id=BOT) is None
    assert translate.message_kind({**dm, "channel_type": "channel"}, bot_user_id=BOT) is None
    assert translate.message_kind({**dm, "subtype": "file_share"}, bot_user_id=BOT) is None
    assert translate.message_kind({**dm, "bot_id": "B9"}, bot_user_id=BOT) is None
    # nowhere to answer: no channel, or a ts that is not Slack's string
    assert translate.message_kind({**dm, "channel": None}, bot_user_id=BOT) is None
    assert translate.message_kind({**dm, "ts": 2.0}, bot_user_id=BOT) is None


def test_thread_turns_keep_people_and_answers_in_order() -> None:
    messages: list[dict[str, Any]] = [
        {"user": "U1", "text": "<@U0BOT> leave?", "ts": "1.0"},
        {"user": BOT, "bot_id": "B0", "text": "Hi there", "ts": "1.5"},  # a notice, not an answer
        {
            "user": BOT,
            "bot_id": "B0",
            "text": "27 days &amp; more",
            "ts": "2.0",
            "metadata": {"event_type": "chatbot_answer"},
        },
        {"bot_id": "B9", "subtype": "bot_message", "text": "beep", "ts": "2.5"},
        {"user": "U1", "text": "carry over?", "ts": "3.0"},
        {"user": "U1", "text": "later", "ts": "4.0"},
    ]
    turns = translate.to_turns(messages, bot_user_id=BOT, bot_id="B0", before_ts="3.0")
    assert [(t.role, t.text) for t in turns] == [("user", "leave?"), ("assistant", "27 days & more")]


def test_correction_errors() -> None:
    base = translate.CorrectionSubmission(7, "U1", "", "C1", "1.0", translate.digest("27 days."))
    assert translate.correction_error(base) is not None
    assert translate.correction_error(base.__class__(**{**base.__dict__, "text": " 27  days. "})) is not None
    assert translate.correction_error(base.__class__(**{**base.__dict__, "text": "30 days."})) is None


def test_escape_covers_slacks_control_characters_only() -> None:
    assert escape("a & b < c > d *bold* _it_") == "a &amp; b &lt; c &gt; d *bold* _it_"


def test_split_text_respects_the_escaped_limit_and_word_breaks() -> None:
    text = " ".join(f"word{i} <&>" for i in range(2000))
    pieces = split_text(text, 3000)
    assert all(len(escape(p)) <= 3000 for p in pieces)
    assert " ".join(pieces) == text
    assert all(not p.endswith("<") for p in pieces[:-1])
    assert split_text("x" * 7000, 3000) == ["x" * 3000, "x" * 3000, "x" * 1000]
    assert split_text("") == []


def test_long_answers_are_split_to_slacks_limits_with_controls_on_the_last_message() -> None:
    sources = [Source(f"Doc {i}", f"d{i}.md", None, 1.0, f"p{i}") for i in range(15)]
    text = " ".join(f"lorem{i} **ipsum**" for i in range(4_000))  # 60k characters of Markdown
    replies = to_reply(answer(text, sources))
    assert len(replies) > 1
    for reply in replies:
        assert reply.blocks[0]["type"] == "markdown" and len(reply.blocks[0]["text"]) <= MARKDOWN_LIMIT
        assert reply.metadata == {"event_type": "chatbot_answer", "event_payload": {"answer_id": 7}}
    assert " ".join(r.blocks[0]["text"] for r in replies) == text  # cut between words, nothing lost
    assert [b["type"] for b in replies[-1].blocks] == ["markdown", "context", "actions", "context_actions"]
    assert all(len(r.blocks) == 1 for r in replies[:-1])
    assert len(replies[-1].blocks[-3]["elements"]) == 10  # a context block's limit


def test_markdown_from_the_model_is_kept_as_written() -> None:
    [reply] = to_reply(answer("You get:\n\n- **26 days** a year\n- [the policy](https://wiki.example/leave)"))
    assert reply.blocks[0] == {
        "type": "markdown",
        "text": "You get:\n\n- **26 days** a year\n- [the policy](https://wiki.example/leave)",
    }


def test_unrecorded_answers_get_no_feedback_controls() -> None:
    [reply] = to_reply(answer("27 days.", answer_id=None))
    assert [b["type"] for b in reply.blocks] == ["markdown"] and reply.metadata is None


def test_source_links_only_for_web_urls() -> None:
    sources = [
        Source("A > B", "a.md", "https://wiki.example/a?x=1&y=2|3", 1.0, "p1"),
        Source("C", "c.md", "javascript:alert(1)", 0.5, "p2"),
    ]
    [reply] = to_reply(answer("ok", sources))
    lines = [e["text"] for e in reply.blocks[1]["elements"]]
    assert lines[1] == "1. <https://wiki.example/a?x=1&amp;y=2%7C3|A &gt; B>"
    assert lines[2] == "2. C · _c.md_"


def test_correction_modal_is_prefilled_and_carries_its_answer() -> None:
    view = blocks.correction_modal(answer_id=7, answer_text="27 days.", channel="C1", thread_ts="1.0")
    assert view["callback_id"] == translate.CORRECTION_VIEW
    assert view["blocks"][0]["element"]["initial_value"] == "27 days."
    assert len(view["title"]["text"]) <= 24
    body = {
        "user": {"id": "U2"},
        "view": {
            **view,
            "state": {
                "values": {"correction": {"text": {"type": "plain_text_input", "value": " 30 days. "}}}
            },
        },
    }
    submission = translate.to_correction(body)
    assert (submission.answer_id, submission.user_id, submission.text) == (7, "U2", "30 days.")
    assert (submission.channel, submission.thread_ts) == ("C1", "1.0")


@pytest.mark.parametrize(
    "body",
    [
        {"user": {"id": "U2"}, "view": {"private_metadata": "not json"}},
        {"user": {"id": "U2"}, "view": {"private_metadata": "{}"}},
        {"user": {"id": "U2"}, "view": {"private_metadata": '{"answer_id": "abc"}'}},
        {"user": {"id": "U2"}, "view": {"private_metadata": '{"answer_id": -3}'}},
        {"user": {"id": "U2"}, "view": "x"},
        {"view": {"private_metadata": '{"answer_id": 7}'}},
        {"user": "U2", "view": {"private_metadata": '{"answer_id": 7}', "state": []}},
    ],
)
def test_a_submission_that_names_no_answer_or_nobody_translates_to_none(body: dict[str, Any]) -> None:
    assert translate.to_correction(body) is None


def test_clicks_missing_their_fields_are_not_clicks() -> None:
    action = {"action_id": translate.CORRECTION_ACTION, "value": "7"}
    assert translate.correction_request({"actions": [action]}) is None  # nobody clicked
    click = translate.correction_request({"user": {"id": "U1"}, "actions": ["x", action], "channel": "C1"})
    assert click == translate.CorrectionRequest(answer_id=7, user_id="U1", channel="", trigger_id="")
    vote = {"type": "block_actions", "actions": [{"action_id": translate.FEEDBACK_ACTION, "value": "up:7"}]}
    assert translate.to_feedback(vote) is None


@pytest.mark.parametrize("value", ["9" * 5000, "١", "²", str(2**31), "0", "-7", " 7", "7_0", ""])
def test_a_button_value_no_answer_can_have_names_none(value: str) -> None:
    """int() raised on 5000 digits (past Python's 4300-digit limit) and read "١" as 1."""
    action = {"action_id": translate.CORRECTION_ACTION, "value": value}
    click = translate.correction_request({"user": {"id": "U1"}, "actions": [action]})
    assert click is not None and click.answer_id is None  # the person is told it is not found
    vote = {
        "type": "block_actions",
        "user": {"id": "U1"},
        "actions": [{"action_id": translate.FEEDBACK_ACTION, "value": f"up:{value}"}],
    }
    assert translate.to_feedback(vote) is None


def test_every_block_we_send_passes_slack_sdks_validation() -> None:
    """The blocks are plain dicts for speed; slack_sdk's models check them against Block Kit's
    limits here (lengths, element counts, required fields)."""
    sources = [Source(f"Doc {i}", f"d{i}.md", f"https://wiki.example/{i}", 1.0, f"p{i}") for i in range(12)]
    messages = [
        *to_reply(answer("A long answer. " * 900, sources)),
        blocks.notice("Sorry, I can't answer right now."),
        blocks.correction_invite(7),
    ]
    for message in messages:
        for block in message.blocks:
            parsed = Block.parse(block)
            assert parsed is not None and parsed.type == block["type"]
            parsed.validate_json()
            assert parsed.to_dict()["type"] == block["type"]
    modal = View(
        **blocks.correction_modal(answer_id=7, answer_text="x" * 5000, channel="C1", thread_ts="1.0")
    )
    modal.validate_json()
