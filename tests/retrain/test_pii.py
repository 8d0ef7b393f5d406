"""Personal data is scrubbed from training text; the company's published contacts are kept."""

from __future__ import annotations

import pytest

from retrain.pii import Scrubber

KB = "Call the IT desk on +31 10 555 0100 or write to it-help@larkspur.example. VPN gateway 10.20.0.1."


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("Mail me at jane.doe@gmail.com please", "Mail me at [EMAIL] please", "EMAIL"),
        ("my mobile is +31 6 1234 5678", "my mobile is [PHONE]", "PHONE"),
        ("call (416) 555-0142 after 5", "call [PHONE] after 5", "PHONE"),
        ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged", "CARD"),
        ("IBAN NL91 ABNA 0417 1643 00 for the refund", "IBAN [IBAN] for the refund", "IBAN"),
        ("my laptop is on 192.168.1.23", "my laptop is on [IP]", "IP"),
        ("ask <@U024BE7LH> about it", "ask [MENTION] about it", "MENTION"),
    ],
)
def test_personal_data_is_replaced(text: str, expected: str, kind: str) -> None:
    scrubber = Scrubber.from_corpus([KB])
    assert scrubber.scrub(text) == expected
    assert scrubber.counts[kind] == 1


@pytest.mark.parametrize(
    "text",
    [
        "The IT desk is on +31 10 555 0100.",
        "Write to IT-Help@larkspur.example for a new laptop.",
        "The gateway is 10.20.0.1.",
        "You get 25 days, up to EUR 1,500 a year, by 2026-03-31; extension 4410.",
        "Order number 4111 1111 1111 1112 is not a valid card.",
    ],
)
def test_published_contacts_and_ordinary_numbers_survive(text: str) -> None:
    scrubber = Scrubber.from_corpus([KB])
    assert scrubber.scrub(text) == text
    assert sum(scrubber.counts.values()) == 0
