from __future__ import annotations

import pytest

from retrain.metrics import has_key_fact, token_f1


def test_token_f1() -> None:
    assert token_f1("You get 25 days.", "You get 25 days") == 1.0
    assert token_f1("twenty five", "25 days") == 0.0
    assert token_f1("You get 25 days of leave", "25 days") == pytest.approx(0.5)  # P 2/6, R 1
    assert token_f1("", "") == 1.0


@pytest.mark.parametrize(
    ("answer", "fact", "hit"),
    [
        ("The limit is EUR 1,500 per year.", "EUR 1500", True),
        ("Ask in #it-help on Slack", "#it-help", True),
        ("Use Tunnelbird.", "tunnelbird", True),
        ("You get 250 days", "25 days", False),
        ("Up to 2% of salary", "2%", True),
        ("Version 3.12 is required", "3.12", True),
        ("Version 3.1 is required", "3.12", False),
    ],
)
def test_key_fact(answer: str, fact: str, hit: bool) -> None:
    assert has_key_fact(answer, fact) is hit
