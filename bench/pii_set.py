"""Build the labelled personal-data set that `bench.pii` scores the scrubbers on.

    .venv/bin/python -m bench.pii_set [--seed 16] [--out bench/data/pii_sentences.jsonl]

Sentences in the style of workplace chat, made from templates and fill lists with `random.Random(16)`:
about half carry personal data (names, home addresses, phone numbers in NL, UK, US/CA, PT, DE and FR
formats, e-mail addresses, IBANs of several countries, employee and passport numbers, a few card
numbers and IP addresses), the other half none, with decoys: tool and language names that look like
names (Perch, Jenkins, Ada), places and offices, rooms named after people, dates, amounts, versions,
ticket and order numbers. The company's published contacts (the sample knowledge base's help-desk
phone, office addresses and managers) are labelled as no personal data: the scrubbers are given that
knowledge base as the published corpus.

Each sentence is "tune" (about 40%) or "test". Every fill list is split the same way, so a test
sentence holds names, addresses and decoys no tune sentence has; thresholds are tuned on "tune" only.
Labels cover the personal value only: in "employee number 20417" the span is "20417"; an address
spans street, number, postcode and city as written.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "data" / "pii_sentences.jsonl"
TUNE_SHARE = 0.4

PEOPLE = [
    "Maria Santos",
    "Jan de Vries",
    "Tom Becker",
    "Sophie Martin",
    "João Pereira",
    "Liam O'Connor",
    "Aisha Khan",
    "Chen Wei",
    "Noah Williams",
    "Fatima El Amrani",
    "Lucas Dubois",
    "Eva Jansen",
    "Daan Visser",
    "Inês Costa",
    "Olivia Brown",
    "Sven Müller",
    "Kwame Mensah",
    "Yuki Tanaka",
    "Camille Laurent",
    "Rui Almeida",
    "Hannah Schmidt",
    "Sanne Bos",
    "Ethan Clarke",
    "Mariana Lopes",
    "Lena Fischer",
    "Pieter Smit",
    "Grace Okafor",
    "Amélie Moreau",
    "Diego Ramos",
    "Sarah Mitchell",
]
ADDRESSES = [
    "Keizersgracht 123, 1015 CJ Amsterdam",
    "12 Baker Street, London NW1 6XE",
    "Rua Augusta 45, 1100-048 Lisboa",
    "Hauptstraße 5, 10115 Berlin",
    "15 rue de la Paix, 75002 Paris",
    "88 Queen Street West, Toronto, ON M5H 2N2",
    "Witte de Withstraat 27, 3012 BN Rotterdam",
    "742 Maple Avenue, Springfield, IL 62704",
    "Avenida da Liberdade 110, 1250-146 Lisboa",
    "Schillerstraße 14, 60313 Frankfurt",
    "27 Kings Road, Brighton BN1 1NB",
    "Oudegracht 201, 3511 NL Utrecht",
    "9 avenue Victor Hugo, 69002 Lyon",
    "1450 Oak Drive, Seattle, WA 98101",
    "Rua de Santa Catarina 312, 4000-443 Porto",
    "Bergweg 88, 3036 BC Rotterdam",
    "33 Elm Road, Manchester M14 5TP",
    "Gartenstraße 3, 20095 Hamburg",
    "410 Bloor Street West, Toronto, ON M5S 1X5",
    "Prinsengracht 263, 1016 GV Amsterdam",
]
TOOLS = [
    "Perch",
    "Keyring",
    "Tunnelbird",
    "Jenkins",
    "Grafana",
    "Meadow",
    "Ledgerline",
    "Harbor",
    "Beacon",
    "Lockbox",
    "Sprout",
    "Compass",
    "Waypoint",
    "Helm",
    "Forge",
    "Conveyor",
    "Shipyard",
    "Semaphore",
    "Cellar",
    "Lookout",
    "Switchboard",
    "Gatekeeper",
    "Kubernetes",
    "Jira",
    "Confluence",
    "Figma",
    "Sentry",
    "Terraform",
    "Ansible",
    "Datadog",
    "Zendesk",
    "Salesforce",
    "Okta",
    "Miro",
    "Hudson",
    "Travis",
    "Maven",
    "Jasper",
    "Vault",
    "Bamboo",
]
LANGUAGES = ["Ada", "Julia", "Ruby", "Elixir", "Erlang", "Haskell", "Scala", "Pascal", "Crystal", "Perl"]
CITIES = [
    "Rotterdam",
    "Lisbon",
    "Toronto",
    "Amsterdam",
    "Porto",
    "Berlin",
    "Paris",
    "London",
    "Madrid",
    "Frankfurt",
    "Montreal",
    "Vancouver",
    "Utrecht",
    "Eindhoven",
    "Coimbra",
    "Lyon",
    "Hamburg",
    "Dublin",
    "Brussels",
    "Antwerp",
]
ROOMS = [
    "The Dock",
    "The Cabin",
    "Kombuis",
    "Lovelace room",
    "Turing room",
    "Magellan room",
    "Vasco da Gama room",
    "Erasmus room",
    "Hopper room",
    "Tesla room",
    "Sagres room",
    "Maple room",
    "Lighthouse room",
    "Crow's Nest",
    "Darwin room",
    "Miradouro",
]
DATES = [
    "12 March",
    "March 3rd",
    "2025-03-31",
    "Friday",
    "next Tuesday",
    "31/12",
    "1 April 2026",
    "14 Feb",
    "Monday the 9th",
    "June 30",
    "2026-01-15",
    "the 1st of May",
]
TIMES = ["14:00", "9am", "3pm CET", "16:30", "10:15", "noon", "11:00 ET", "08:45"]
AMOUNTS = [
    "EUR 1,500",
    "€120",
    "$2,499.00",
    "EUR 180",
    "GBP 95",
    "USD 12,000",
    "EUR 1.2M",
    "CAD 340",
    "€9.60",
    "EUR 20",
    "$75",
    "GBP 1,250",
]
VERSIONS = ["v2.13.0", "3.11.7", "2024.10.1", "17.4.1", "macOS 15.3", "1.0.0-rc2", "Python 3.12", "8.3.14"]
TICKETS = [
    "JIRA-1234",
    "INC-4471",
    "HELM-20417",
    "OPS-889",
    "SEC-102",
    "FORGE-77123",
    "CHG-0042",
    "PLAT-5120",
    "SUP-30918",
    "DEVX-215",
]
TRACKING = ["1Z999AA10123456784", "JD014600006251893456", "CP123456789CA", "RR123456785NL"]
# The sample knowledge base publishes these; a scrubber given that corpus must keep them.
PUBLISHED_PHONES = ["+31 10 555 0330", "+31 10 555 2400", "+31 20 555 0177", "+31 20 555 0199"]
PUBLISHED_EMAILS = [
    "itdesk@larkspur.example",
    "facilities.lisbon@larkspur.example",
    "people@larkspur.example",
    "privacy@larkspur.example",
    "facilities.toronto@larkspur.example",
    "expenses@larkspur.example",
]
PUBLISHED_OFFICES = [
    ("Rotterdam", "Lloydkade 40, 3024 Rotterdam", "Noor Bakker"),
    ("Lisbon", "Rua da Boavista 77, 1200-066 Lisboa", "Inês Carvalho"),
    ("Toronto", "220 Spadina Avenue", "Priya Raman"),
]

# {slot}: personal data (labelled); {slot_}: filler (not labelled).
PERSONAL = [
    "Hi {first}, can you send the signed contract to {email} before {date_}?",
    "{person} is off sick today; her mobile is {phone} if anything is urgent.",
    "New joiner {person} starts on {date_}, employee number {empno}.",
    "Please update my home address in Meadow to {address}.",
    "My bank changed, the new IBAN is {iban}. Can payroll update it before {date_}?",
    "I lost my passport in {city_}, the number was {passport}. What do I do?",
    "Booking {person} on the {city_} flight, passport {passport}, expires 2031.",
    "Can someone reset the Keyring login for {emp}? She is locked out.",
    "{person} ({emp}) moved to {address} last month.",
    "call me on {phone} if the VPN drops again",
    "Refund for the hotel should go to {iban}, account holder {person}.",
    "The courier needs the delivery address: {address}, phone {phone}.",
    "My corporate card {card} was charged twice for the Waypoint booking.",
    "My laptop's IP is {ip}, can you add it to the allow list?",
    "cc {first} and {first} on this thread please",
    "thanks {first}, that fixed it!",
    "Meeting with {person} from Kestrel Bank moved to {time_}.",
    "{person}'s new number is {phone}, the old one is gone.",
    "Send the payslip to {email} instead of my work address, my employee number is {empno}.",
    "Customer contact is {person}, {phone}, {email}.",
    "For the visa letter: {person}, passport number {passport}, home address {address}.",
    "ask {first_lower} in finance, she knows the {tool_} export",
    "My staff ID is {empno} and I still can't log into {tool_}.",
    "{first} said the {room_} is free; ring her on {phone}.",
    "Wire the deposit to {iban} and mail the receipt to {email}.",
    "Personnel number {empno} belongs to {person}, not to me.",
    "Is {ip} your home router, {first}?",
    "Can you ship the monitor to {person}, {address}?",
    "Passport no. {passport} is on file for {person}; please check the expiry.",
    "My landline at home is {phone} (I'm in {city_} this week).",
    "Please block card {card}, I left it in a taxi in {city_}.",
    "{person} wants the {tool_} invoices sent to {email}.",
    "Mijn nieuwe adres is {address}, bel me op {phone}.",
    "O meu IBAN é {iban}, obrigado {first}!",
    "Payroll: {emp} ({person}) should be paid into {iban} from {date_}.",
    "I'm {person}, my employee ID is {empno}, and my Perch badge stopped working.",
]
NO_PERSONAL = [
    "Is {tool_} down for anyone else? It keeps timing out.",
    "{tool_} asks me to log in again since the update to {version_}.",
    "The {city_} office is closed on {date_} for the public holiday.",
    "Who booked the {room_} at {time_}? I need it for a demo.",
    "I filed {ticket_} for the broken {tool_} pipeline.",
    "The hotel limit is {amount_} per night in {city_}.",
    "Call the service desk on {kb_phone_} if your laptop won't start.",
    "Write to {kb_email_} for a new badge.",
    "{tool_} failed again on build #{build_}, see {ticket_}.",
    "The {tool_} dashboard shows p99 latency at {ms_} ms since {date_}.",
    "We're moving from {tool_} to {tool_} by {date_}.",
    "Does anyone here still write {language_}?",
    "Purchase order {po_} was approved for {amount_}.",
    "Extension {ext_} rings the Tech Bar in {city_}.",
    "Please upgrade to {version_} before {date_}; {ticket_} has the details.",
    "The screen in the {room_} is broken again.",
    "Port {port_} is blocked on the guest Wi-Fi in {city_}.",
    "Our Q3 target is {amount_}, up 12% on last year.",
    "Release {version_} of {tool_} ships on {date_}.",
    "Is the {city_} team joining the Tide Talk on {date_}?",
    "The train to {city_} leaves at {time_}, platform 7.",
    "{tool_} and {tool_} both need the VPN, so turn Tunnelbird on first.",
    "Error 0x80070005 when {tool_} installs the {version_} update.",
    "The invoice total was {amount_} including 21% VAT.",
    "Can I expense a taxi from {city_} airport? It was {amount_}.",
    "Meeting moved to the {room_}, same time ({time_}).",
    "Sprint {sprint_} review is on {date_} in the {room_}.",
    "{ticket_} and {ticket_} are duplicates, closing one.",
    "Commit {sha_} broke the {tool_} build.",
    "Pizza in the {room_} at {time_} for everyone who joined the {city_} offsite!",
    "Tracking number {tracking_} shows the laptop left {city_} on {date_}.",
    "Our {kb_city_} office is at {kb_address_}.",
    "Ask {kb_manager_}, the office manager, about parking.",
    "Kestrel Bank renewed for {amount_} over 3 years.",
    "{language_} or {language_} for the new service? {tool_} supports both.",
    "The {tool_} licence costs {amount_} per seat per month.",
]


def _luhn_digit(partial: str) -> str:
    total = 0
    for i, d in enumerate(reversed(partial)):
        n = int(d) * (1 if i % 2 else 2)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def _iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


class Maker:
    """Fill values: lists split into tune and test halves, and generated numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def phone(self) -> str:
        d, r = self.digits, self.rng
        area = r.choice(["212", "415", "416", "617", "312", "604", "514", "647", "206"])
        exchange = f"{r.randint(2, 9)}{r.randint(0, 9)}{r.randint(1, 9)}"
        formats: list[Callable[[], str]] = [
            lambda: f"+31 6 {d(4)} {d(4)}",  # NL mobile
            lambda: f"06-{r.randint(1, 5)}{d(7)}",
            lambda: f"010 {r.randint(2, 8)}{d(2)} {d(4)}",
            lambda: f"+31 (0)20 {r.randint(2, 8)}{d(2)} {d(4)}",
            lambda: f"+44 7{r.randint(4, 9)}{d(2)} {d(6)}",  # UK
            lambda: f"07{r.randint(4, 9)}{d(2)} {d(6)}",
            lambda: f"020 7{d(3)} {d(4)}",
            lambda: f"({area}) {exchange}-{d(4)}",  # US/CA
            lambda: f"{area}-{exchange}-{d(4)}",
            lambda: f"+1 {area} {exchange} {d(4)}",
            lambda: f"+351 9{r.choice('1236')}{d(1)} {d(3)} {d(3)}",  # PT
            lambda: f"9{r.choice('1236')}{d(1)} {d(3)} {d(3)}",
            lambda: f"+351 21 {r.randint(3, 9)}{d(2)} {d(4)}",
            lambda: f"+49 30 {r.randint(2, 9)}{d(7)}",  # DE
            lambda: f"0151 {d(8)}",
            lambda: f"+49 (0)89 {r.randint(2, 9)}{d(3)} {d(4)}",
            lambda: f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",  # FR
            lambda: f"06 {d(2)} {d(2)} {d(2)} {d(2)}",
            lambda: f"01.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
        ]
        return r.choice(formats)()

    def iban(self) -> str:
        r, d = self.rng, self.digits
        country, bban = r.choice(
            [
                ("NL", r.choice(["ABNA", "RABO", "INGB", "TRIO"]) + d(10)),
                ("DE", d(18)),
                ("GB", r.choice(["NWBK", "BARC", "HBUK", "MIDL"]) + d(14)),
                ("PT", d(21)),
                ("FR", d(23)),
                ("BE", d(12)),
                ("ES", d(20)),
            ]
        )
        compact = country + _iban_check(country, bban) + bban
        if r.random() < 0.25:
            return compact
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    def card(self) -> str:
        prefix = self.rng.choice(["4", "51", "55", "4929"])
        partial = prefix + self.digits(15 - len(prefix))
        number = partial + _luhn_digit(partial)
        sep = self.rng.choice([" ", "-", ""])
        return sep.join(number[i : i + 4] for i in range(0, 16, 4))

    def passport(self) -> str:
        r, d = self.rng, self.digits
        letters = "ABCDEFGHJKLMNPRSTUVWXYZ"

        def mixed(n: int) -> str:
            return "".join(r.choice(letters + "0123456789") for _ in range(n))

        return r.choice(
            [
                lambda: r.choice(letters) + r.choice(letters) + mixed(6) + d(1),  # NL
                lambda: d(9),  # UK, US
                lambda: r.choice("CX") + d(8),  # US next generation
                lambda: r.choice("CFGHJK") + mixed(7) + d(1),  # DE
                lambda: d(2) + r.choice(letters) + r.choice(letters) + d(5),  # FR
                lambda: r.choice("CPN") + d(6),  # PT
            ]
        )()

    def ip(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"192.168.{r.randint(0, 9)}.{r.randint(2, 254)}",
                f"10.{r.randint(0, 40)}.{r.randint(0, 255)}.{r.randint(2, 254)}",
                f"{r.randint(62, 213)}.{r.randint(1, 254)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
            ]
        )


def _email(name: str, rng: random.Random) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    parts = re.sub(r"[^a-z ]", "", plain).split()
    local = rng.choice([".".join(parts), parts[0][0] + parts[-1], parts[0] + str(rng.randint(1, 99))])
    return (
        f"{local}@{rng.choice(['gmail.com', 'outlook.com', 'hotmail.co.uk', 'gmx.de', 'larkspur.example'])}"
    )


def _halves(values: list[Any]) -> dict[str, list[Any]]:
    # every fifth value's first two go to tune: 40%, spread over the list
    return {
        "tune": [v for i, v in enumerate(values) if i % 5 in (0, 2)],
        "test": [v for i, v in enumerate(values) if i % 5 not in (0, 2)],
    }


LISTS = {
    "person": PEOPLE,
    "address": ADDRESSES,
    "tool_": TOOLS,
    "language_": LANGUAGES,
    "city_": CITIES,
    "room_": ROOMS,
    "date_": DATES,
    "time_": TIMES,
    "amount_": AMOUNTS,
    "version_": VERSIONS,
    "ticket_": TICKETS,
    "tracking_": TRACKING,
}
SPLIT_LISTS = {name: _halves(values) for name, values in LISTS.items()}


def _value(slot: str, split: str, maker: Maker) -> tuple[str, str | None]:
    """(text, entity type or None) for one slot."""
    r = maker.rng
    if slot in ("person", "first", "first_lower", "email"):
        name = r.choice(SPLIT_LISTS["person"][split])
        if slot == "email":
            return _email(name, r), "EMAIL"
        first = name.split()[0]
        return {"person": name, "first": first, "first_lower": first.lower()}[slot], "PERSON"
    if slot in SPLIT_LISTS:
        return r.choice(SPLIT_LISTS[slot][split]), ("ADDRESS" if slot == "address" else None)
    generated: dict[str, Callable[[], tuple[str, str | None]]] = {
        "phone": lambda: (maker.phone(), "PHONE"),
        "iban": lambda: (maker.iban(), "IBAN"),
        "card": lambda: (maker.card(), "CARD"),
        "passport": lambda: (maker.passport(), "PASSPORT"),
        "ip": lambda: (maker.ip(), "IP"),
        "emp": lambda: (f"EMP-{maker.digits(5)}", "EMPLOYEE_ID"),
        "empno": lambda: (str(r.randint(10000, 99999)), "EMPLOYEE_ID"),
        "kb_phone_": lambda: (r.choice(PUBLISHED_PHONES), None),
        "kb_email_": lambda: (r.choice(PUBLISHED_EMAILS), None),
        "build_": lambda: (str(r.randint(1000, 99999)), None),
        "ms_": lambda: (str(r.randint(120, 900)), None),
        "po_": lambda: (r.choice(["45000", "PO-2025-0"]) + maker.digits(5), None),
        "ext_": lambda: (str(r.randint(1000, 7999)), None),
        "port_": lambda: (r.choice(["8443", "22", "3389", "5432", "6443"]), None),
        "sprint_": lambda: (str(r.randint(12, 80)), None),
        "sha_": lambda: ("".join(r.choice("0123456789abcdef") for _ in range(7)), None),
    }
    return generated[slot]()


def render(template: str, split: str, maker: Maker) -> tuple[str, list[dict[str, Any]]]:
    office = maker.rng.choice(PUBLISHED_OFFICES)
    text, entities, pos = "", [], 0
    for match in re.finditer(r"\{(\w+)\}", template):
        text += template[pos : match.start()]
        slot = match.group(1)
        if slot in ("kb_city_", "kb_address_", "kb_manager_"):
            value, kind = office[("kb_city_", "kb_address_", "kb_manager_").index(slot)], None
        else:
            value, kind = _value(slot, split, maker)
        if kind:
            entities.append({"type": kind, "start": len(text), "end": len(text) + len(value)})
        text += value
        pos = match.end()
    return text + template[pos:], entities


def build(seed: int, per_kind: int = 130) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    maker = Maker(rng)
    rows = []
    for kind, templates in (("pii", PERSONAL), ("none", NO_PERSONAL)):
        for i in range(per_kind):
            template = templates[i % len(templates)]
            split = "tune" if rng.random() < TUNE_SHARE else "test"
            text, entities = render(template, split, maker)
            rows.append({"id": f"{kind}-{i:03d}", "split": split, "text": text, "entities": entities})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = build(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"{len(rows)} sentences ({sum(1 for r in rows if r['split'] == 'tune')} tune) -> {args.out}")


if __name__ == "__main__":
    main()
