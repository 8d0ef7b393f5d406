"""Ids that arrive from outside (a form, a URL, a card's metadata) checked against the id columns'
range before any query uses them: an id that cannot exist is "not found" on both databases, where
PostgreSQL's INTEGER would refuse it ("integer out of range") and SQLite's driver would overflow.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import Session

# PostgreSQL's INTEGER, the narrowest id column here; ids start at 1.
MAX_ID = 2**31 - 1
_DIGITS = len(str(MAX_ID))

T = TypeVar("T")


def in_range(value: int) -> bool:
    """Whether a row could have id `value`."""
    return 1 <= value <= MAX_ID


def parse(raw: object) -> int | None:
    """`raw` (an int, or a string of ASCII digits) as an id a row could have; None otherwise."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if in_range(raw) else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= _DIGITS:
        value = int(raw)
        return value if in_range(value) else None
    return None


def get(session: Session, model: type[T], ident: int, **options: Any) -> T | None:
    """`session.get` for an id from outside: None, without asking the database, when out of range."""
    if not in_range(ident):
        return None
    return session.get(model, ident, **options)
