"""Consistency checks for the sample knowledge base (bot/knowledge/sample).

The sample knowledge base is ingested by default, used as seed training data
and as the evaluation set, so every question must point at a real section of a
real page, and its key fact must actually be stated there.

Only the standard library and pytest are used.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.support.paths import REPO

SAMPLE_DIR = REPO / "bot" / "knowledge" / "sample"
DOCS_DIR = SAMPLE_DIR / "docs"
QUESTIONS_FILE = SAMPLE_DIR / "questions.jsonl"

REQUIRED_FIELDS = ("id", "question", "reworded", "answer", "key_fact", "page", "section", "split")
SPLITS = ("train", "validation", "test")
EXPECTED_AREAS = {
    "benefits-and-leave",
    "expenses-and-travel",
    "it-helpdesk-and-accounts",
    "security-and-devices",
    "onboarding",
    "offices",
    "engineering-practices",
    "support-escalation",
}

MIN_PAGES = 25
MIN_QUESTIONS = 150
MIN_TEST_QUESTIONS = 30
MIN_QUESTIONS_PER_PAGE = 3

_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_ID_RE = re.compile(r"^[a-z]+(?:-[a-z]+)*-\d{3}$")


# --------------------------------------------------------------------------- helpers


def normalise(text: str) -> str:
    """Lower-case and collapse all runs of whitespace to a single space."""
    return " ".join(text.lower().split())


def expected_split(question_id: str) -> str:
    """First 8 hex digits of sha1(id) as an integer, mod 10: 0-6 train, 7 validation, 8-9 test."""
    bucket = int(hashlib.sha1(question_id.encode("utf-8")).hexdigest()[:8], 16) % 10
    if bucket <= 6:
        return "train"
    if bucket == 7:
        return "validation"
    return "test"


def parse_headings(markdown: str) -> list[tuple[int, int, str]]:
    """Return (line_index, level, title) for every ATX heading outside fenced code blocks."""
    headings = []
    fence: str | None = None
    for index, line in enumerate(markdown.splitlines()):
        fence_match = _FENCE_RE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker
            elif (
                marker[0] == fence[0]
                and len(marker) >= len(fence)
                and not line.strip()[len(marker) :].strip()
            ):
                fence = None
            continue
        if fence is not None:
            continue
        heading_match = _HEADING_RE.match(line)
        if heading_match:
            headings.append((index, len(heading_match.group(1)), heading_match.group(2).strip()))
    return headings


def parse_sections(markdown: str) -> dict[str, str]:
    """Map each heading path ("Title > Section > Subsection") to the text of that section.

    A section's text runs from the line after its heading up to the next heading of
    the same or a higher level (fewer #), so it includes its subsections.
    """
    lines = markdown.splitlines()
    headings = parse_headings(markdown)
    sections: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for position, (line_index, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        path = " > ".join(t for _, t in stack)
        end = len(lines)
        for next_index, next_level, _ in headings[position + 1 :]:
            if next_level <= level:
                end = next_index
                break
        assert path not in sections, f"duplicate heading path {path!r}"
        sections[path] = "\n".join(lines[line_index + 1 : end])
    return sections


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    assert DOCS_DIR.is_dir(), f"missing docs directory {DOCS_DIR}"
    return {
        path.relative_to(DOCS_DIR).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(DOCS_DIR.rglob("*.md"))
    }


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    assert QUESTIONS_FILE.is_file(), f"missing {QUESTIONS_FILE}"
    records = []
    for number, line in enumerate(QUESTIONS_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:  # pragma: no cover - reported as failure
            pytest.fail(f"questions.jsonl line {number} is not valid JSON: {exc}")
        assert isinstance(record, dict), f"line {number} is not a JSON object"
        records.append(record)
    return records


# --------------------------------------------------------------------------- parser self-tests


def test_parser_ignores_headings_in_code_blocks():
    text = "# Title\n\n## A\n\n```bash\n# not a heading\n```\n\nbody\n\n### A1\n\nsub\n\n## B\n\nlast\n"
    sections = parse_sections(text)
    assert list(sections) == ["Title", "Title > A", "Title > A > A1", "Title > B"]
    assert "sub" in sections["Title > A"]  # subsections belong to their parent
    assert "last" not in sections["Title > A"]
    assert "# not a heading" in sections["Title > A"]


def test_split_rule_examples():
    assert {expected_split(f"x-{n:03d}") for n in range(200)} == set(SPLITS)


# --------------------------------------------------------------------------- pages


def test_enough_pages(pages):
    assert len(pages) >= MIN_PAGES, f"only {len(pages)} pages"


def test_pages_are_organised_by_area(pages):
    areas = {Path(name).parts[0] for name in pages}
    assert all(len(Path(name).parts) == 2 for name in pages), "pages must sit one level below docs/"
    assert areas == EXPECTED_AREAS


def test_each_page_has_one_title_and_real_sections(pages):
    for name, text in pages.items():
        headings = parse_headings(text)
        assert headings, f"{name} has no headings"
        assert headings[0][1] == 1, f"{name} must start with a '# Title'"
        assert sum(1 for _, level, _ in headings if level == 1) == 1, f"{name} needs exactly one '# Title'"
        assert any(level == 2 for _, level, _ in headings), f"{name} has no '##' sections"
        parse_sections(text)  # raises on duplicate heading paths


# --------------------------------------------------------------------------- questions


def test_enough_questions(questions):
    assert len(questions) >= MIN_QUESTIONS, f"only {len(questions)} questions"


def test_ids_are_unique_and_well_formed(questions):
    ids = [q.get("id") for q in questions]
    duplicates = [i for i, count in Counter(ids).items() if count > 1]
    assert not duplicates, f"duplicate ids: {duplicates}"
    bad = [i for i in ids if not isinstance(i, str) or not _ID_RE.match(i)]
    assert not bad, f"malformed ids: {bad}"


def _report(problems: list[str]) -> None:
    """Fail with every problem listed, not just the first one."""
    if problems:
        pytest.fail(f"{len(problems)} problem(s):\n" + "\n".join(problems), pytrace=False)


def test_all_fields_present_and_non_empty(questions):
    problems = []
    for q in questions:
        for field in REQUIRED_FIELDS:
            value = q.get(field)
            if not (isinstance(value, str) and value.strip()):
                problems.append(f"{q.get('id')}: field {field!r} missing or empty")
    _report(problems)


def test_reworded_differs_from_question(questions):
    _report(
        [
            f"{q['id']}: reworded is identical to question"
            for q in questions
            if normalise(q["reworded"]) == normalise(q["question"])
        ]
    )


def test_key_fact_is_short(questions):
    _report(
        [
            f"{q['id']}: key_fact {q['key_fact']!r} should be 1-5 words"
            for q in questions
            if not 1 <= len(q["key_fact"].split()) <= 5
        ]
    )


def test_key_fact_in_answer(questions):
    _report(
        [
            f"{q['id']}: key_fact {q['key_fact']!r} not in answer {q['answer']!r}"
            for q in questions
            if normalise(q["key_fact"]) not in normalise(q["answer"])
        ]
    )


def test_page_and_section_exist_and_contain_key_fact(questions, pages):
    problems = []
    section_cache: dict[str, dict[str, str]] = {}
    for q in questions:
        if q["page"] not in pages:
            problems.append(f"{q['id']}: page {q['page']!r} does not exist")
            continue
        sections = section_cache.setdefault(q["page"], parse_sections(pages[q["page"]]))
        if q["section"] not in sections:
            problems.append(f"{q['id']}: section {q['section']!r} not found in {q['page']}")
        elif normalise(q["key_fact"]) not in normalise(sections[q["section"]]):
            problems.append(f"{q['id']}: key_fact {q['key_fact']!r} not in section {q['section']!r}")
    _report(problems)


def test_every_page_has_questions(questions, pages):
    counts = Counter(q["page"] for q in questions)
    thin = {name: counts.get(name, 0) for name in pages if counts.get(name, 0) < MIN_QUESTIONS_PER_PAGE}
    assert not thin, f"pages with fewer than {MIN_QUESTIONS_PER_PAGE} questions: {thin}"


def test_split_follows_sha1_rule(questions):
    _report(
        [
            f"{q['id']}: split is {q['split']!r}, expected {expected_split(q['id'])!r}"
            for q in questions
            if q["split"] != expected_split(q["id"])
        ]
    )


def test_every_split_is_populated(questions):
    counts = Counter(q["split"] for q in questions)
    assert set(counts) == set(SPLITS), f"splits present: {dict(counts)}"
    assert counts["test"] >= MIN_TEST_QUESTIONS, f"only {counts['test']} test questions"
