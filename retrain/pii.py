"""Scrub personal data from text before it becomes training data.

E-mail addresses, phone numbers, payment card numbers (Luhn-checked), IBANs, IP addresses and
Slack/Teams user mentions are replaced with a tag. Contacts the company publishes in its own
documents (the help desk's phone, `it-help@...`) are answers people need, not personal data:
whatever appears verbatim in the knowledge base is allowed through.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
# +31 10 555 0199, (416) 555-0142, 020-555 0199, +351 912 345 678; needs 7+ digits in all.
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}(?![\w])"
)
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
MENTION = re.compile(r"<@[UW][A-Z0-9]+>|<at>[^<]+</at>")


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass
class Scrubber:
    """`allowed`: strings published in the company's documents, kept as they are."""

    allowed: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_corpus(cls, texts: Iterable[str]) -> Scrubber:
        scrubber = cls()
        scrubber.allow(texts)
        return scrubber

    def allow(self, texts: Iterable[str]) -> None:
        """Let through the contacts these company documents publish."""
        for text in texts:
            self.allowed.update(m.group(0).lower() for m in EMAIL.finditer(text))
            self.allowed.update(_digits(m.group(0)) for m in PHONE.finditer(text))
            self.allowed.update(m.group(0) for m in IPV4.finditer(text))

    def scrub(self, text: str) -> str:
        text = MENTION.sub(self._tag("MENTION"), text)
        text = EMAIL.sub(
            lambda m: m.group(0) if m.group(0).lower() in self.allowed else self._count("EMAIL"), text
        )
        text = IBAN.sub(self._tag("IBAN"), text)
        text = CARD.sub(lambda m: self._count("CARD") if _luhn(_digits(m.group(0))) else m.group(0), text)
        text = IPV4.sub(lambda m: m.group(0) if m.group(0) in self.allowed else self._count("IP"), text)
        return PHONE.sub(self._phone, text)

    def _phone(self, match: re.Match[str]) -> str:
        digits = _digits(match.group(0))
        # Short numbers are amounts, years, extensions or dates; E.164 numbers have at most 15 digits.
        if (
            not 7 <= len(digits) <= 15
            or digits in self.allowed
            or re.fullmatch(r"(19|20)\d\d[-./]\d\d[-./]\d\d", match.group(0))
        ):
            return match.group(0)
        return self._count("PHONE")

    def _tag(self, kind: str) -> Callable[[re.Match[str]], str]:
        return lambda _match: self._count(kind)

    def _count(self, kind: str) -> str:
        self.counts[kind] += 1
        return f"[{kind}]"
