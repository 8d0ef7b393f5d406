"""Reading documents of every supported format and cutting them into chunks that fit the budget."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from bot.knowledge import Chunk, UnreadableDocument, chunk_document, parse_text, read_document
from bot.knowledge.tokens import approx_tokens


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
    return path


def _chunks(
    tmp_path: Path, name: str, text: str, max_tokens: int = 256, overlap_tokens: int = 32
) -> list[Chunk]:
    path = _write(tmp_path, name, text)
    document = read_document(path, name)
    return chunk_document(document, key=str(path), max_tokens=max_tokens, overlap_tokens=overlap_tokens)


def _titles(chunks: list[Chunk]) -> list[str]:
    return [c.title for c in chunks]


def minimal_pdf(pages: list[list[str]], title: str = "") -> bytes:
    """A valid PDF with one Helvetica text line per entry, built by hand (pypdf only reads)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [5 + 2 * i for i in range(len(pages))]
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({escape(title)}) >>",
    ]
    for page_id, lines in zip(page_ids, pages, strict=True):
        stream = "BT /F1 11 Tf 72 740 Td 14 TL " + " ".join(f"({escape(x)}) Tj T*" for x in lines) + " ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return out


def test_nested_markdown_headings_become_heading_paths(tmp_path: Path) -> None:
    chunks = _chunks(
        tmp_path,
        "leave.md",
        """
        # Annual Leave

        Everything about time off.

        ## How much leave you get

        ### Standard allowance

        Full-time employees get 26 days.

        ### Long-service days

        After 5 years you get 27 days.

        ## Carrying days over

        Up to 5 days carry over.
        """,
    )
    assert _titles(chunks) == [
        "Annual Leave",
        "Annual Leave > How much leave you get > Standard allowance",
        "Annual Leave > How much leave you get > Long-service days",
        "Annual Leave > Carrying days over",
    ]
    assert chunks[1].text == "Full-time employees get 26 days."
    assert chunks[1].embed_text.startswith("Annual Leave > How much leave you get > Standard allowance\n\n")
    assert all(c.source == "leave.md" for c in chunks)


def test_front_matter_gives_title_and_url_and_setext_headings_count(tmp_path: Path) -> None:
    chunks = _chunks(
        tmp_path,
        "vpn-guide.md",
        """
        ---
        title: "VPN Guide"
        url: https://wiki.example/vpn
        tags: [it]
        ---
        Connecting
        ----------

        Open Tunnelbird and sign in.
        """,
    )
    assert _titles(chunks) == ["VPN Guide > Connecting"]
    assert chunks[0].url == "https://wiki.example/vpn"
    assert "title:" not in chunks[0].text


def test_untitled_pages_hang_under_their_file_name(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path, "desk-booking_rules.md", "## Booking\n\nUse Perch.\n")
    assert _titles(chunks) == ["Desk booking rules > Booking"]


def test_hash_lines_inside_code_blocks_are_not_headings(tmp_path: Path) -> None:
    chunks = _chunks(
        tmp_path,
        "dev.md",
        """
        # Local Development

        ## Installing

        Run this:

        ```bash
        # install the CLI
        brew install larkctl
        ## not a heading either
        ```

        ~~~
        # still code
        ~~~

        ## Running

        Start it.
        """,
    )
    assert _titles(chunks) == ["Local Development > Installing", "Local Development > Running"]
    assert "```bash\n# install the CLI\nbrew install larkctl\n## not a heading either\n```" in chunks[0].text
    assert "~~~\n# still code\n~~~" in chunks[0].text


def test_long_sections_split_on_paragraphs_under_the_budget_with_overlap(tmp_path: Path) -> None:
    paragraphs = [
        " ".join(f"Paragraph {p} sentence {s} says something about policy {p * 10 + s}." for s in range(4))
        for p in range(12)
    ]
    text = "# Policy\n\n## Details\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = _chunks(tmp_path, "policy.md", text, max_tokens=120, overlap_tokens=20)

    assert len(chunks) > 3
    assert all(approx_tokens(c.embed_text) <= 120 for c in chunks)
    assert all(c.title == "Policy > Details" for c in chunks)
    for paragraph in paragraphs:  # nothing lost, and whole paragraphs where they fit
        assert any(paragraph in c.text for c in chunks)
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.text.split(". ")[0]
        assert first_sentence in before.text, "consecutive chunks share their boundary sentence"
    assert len({c.id for c in chunks}) == len(chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_a_paragraph_longer_than_the_budget_splits_between_sentences(tmp_path: Path) -> None:
    sentences = [f"Sentence number {i} explains rule {i} of the travel policy in detail." for i in range(30)]
    chunks = _chunks(tmp_path, "travel.md", "# Travel\n\n" + " ".join(sentences), max_tokens=80)
    assert len(chunks) > 2
    assert all(approx_tokens(c.embed_text) <= 80 for c in chunks)
    for sentence in sentences:
        assert any(sentence in c.text for c in chunks)


def test_code_blocks_stay_whole_when_they_fit_and_split_between_lines_when_not(tmp_path: Path) -> None:
    lines = [f"echo step {i} && run --flag value{i}  # comment {i}" for i in range(60)]
    text = "# Ops\n\n## Script\n\nSmall:\n\n```sh\nls -la\n```\n\n```sh\n" + "\n".join(lines) + "\n```\n"
    chunks = _chunks(tmp_path, "ops.md", text, max_tokens=150)

    assert "Small:\n\n```sh\nls -la\n```" in chunks[0].text
    pieces = [c.text for c in chunks if "echo step" in c.text]
    assert len(pieces) > 1
    for piece in pieces:
        assert piece.startswith("```sh\n") and piece.endswith("\n```")
    found = [line for piece in pieces for line in piece.split("\n") if line.startswith("echo")]
    assert found == lines, "every line appears once, whole and in order"
    assert all(approx_tokens(c.embed_text) <= 150 for c in chunks)


def test_tables_stay_whole_or_split_by_rows_with_the_header_repeated(tmp_path: Path) -> None:
    small = "| City | Cap |\n|---|---|\n| Lisbon | EUR 140 |\n| Toronto | CAD 260 |"
    rows = [f"| City number {i} | EUR {100 + i} per night |" for i in range(40)]
    big = "| City | Nightly cap |\n|---|---|\n" + "\n".join(rows)
    text = f"# Caps\n\n## Small\n\n{small}\n\n## Big\n\n{big}\n"
    chunks = _chunks(tmp_path, "caps.md", text, max_tokens=120)

    assert chunks[0].title == "Caps > Small" and chunks[0].text == small
    big_chunks = [c for c in chunks if c.title == "Caps > Big"]
    assert len(big_chunks) > 1
    for chunk in big_chunks:
        assert chunk.text.startswith("| City | Nightly cap |\n|---|---|\n")
    assert [r for c in big_chunks for r in c.text.split("\n")[2:]] == rows


def test_restructuredtext_titles_literal_blocks_and_url(tmp_path: Path) -> None:
    chunks = _chunks(
        tmp_path,
        "deploy.rst",
        """
        :url: https://docs.example/deploy

        ===========
        Deployments
        ===========

        How we ship.

        Pipeline
        ========

        Run the pipeline::

            # build first
            make build

            make deploy

        Rollback
        --------

        .. code-block:: bash

           larkctl rollback

        Freezes
        =======

        No deploys on Fridays.
        """,
    )
    assert _titles(chunks) == [
        "Deployments",
        "Deployments > Pipeline",
        "Deployments > Pipeline > Rollback",
        "Deployments > Freezes",
    ]
    assert chunks[1].text == "Run the pipeline::\n\n    # build first\n    make build\n\n    make deploy"
    assert "larkctl rollback" in chunks[2].text
    assert chunks[0].url == "https://docs.example/deploy"


def test_html_headings_lists_tables_and_pre(tmp_path: Path) -> None:
    chunks = _chunks(
        tmp_path,
        "wifi.html",
        """
        <!doctype html>
        <html><head>
          <title>Wi-Fi | Larkspur Wiki</title>
          <link rel="canonical" href="https://wiki.example/wifi">
          <style>h2 { color: red }</style>
          <script>var x = "<h2>not a heading</h2>";</script>
        </head><body>
          <nav><a href="/">Home</a> &gt; IT</nav>
          <h1>Wi-Fi</h1>
          <p>Two networks &amp; one rule.</p>
          <h2>Networks</h2>
          <ul><li>Larkspur-Staff</li><li>Larkspur-Guest</li></ul>
          <h3>Passwords</h3>
          <table><tr><th>Network</th><th>Password</th></tr>
                 <tr><td>Guest</td><td>rotates weekly</td></tr></table>
          <h2>Troubleshooting</h2>
          <pre># restart the adapter
        sudo ifconfig en0 down</pre>
          <footer>Last edited by someone</footer>
        </body></html>
        """,
    )
    assert _titles(chunks) == [
        "Wi-Fi",
        "Wi-Fi > Networks",
        "Wi-Fi > Networks > Passwords",
        "Wi-Fi > Troubleshooting",
    ]
    assert chunks[0].text == "Two networks & one rule."
    assert chunks[1].text == "- Larkspur-Staff\n\n- Larkspur-Guest"
    assert chunks[2].text == "| Network | Password |\n|---|---|\n| Guest | rotates weekly |"
    assert chunks[3].text == "```\n# restart the adapter\nsudo ifconfig en0 down\n```"
    assert all(c.url == "https://wiki.example/wifi" for c in chunks)
    assert not any("Home" in c.text or "Last edited" in c.text or "color" in c.text for c in chunks)


def test_plain_text_is_one_section_of_paragraphs(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path, "parking_faq.txt", "Park on level -2.\n\n# Not a heading in plain text.\n")
    assert _titles(chunks) == ["Parking faq"]
    assert chunks[0].text == "Park on level -2.\n\n# Not a heading in plain text."


def test_pdf_text_is_read_and_titled_from_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "handbook.pdf"
    path.write_bytes(
        minimal_pdf(
            [
                ["Expenses are submitted in Ledgerline.", "Receipts are needed above EUR 25."],
                ["Travel is booked in Waypoint."],
            ],
            title="Employee Handbook",
        )
    )
    chunks = chunk_document(read_document(path, "handbook.pdf"), key=str(path))
    text = " ".join(c.text for c in chunks)
    assert _titles(chunks) == ["Employee Handbook"]
    assert "Expenses are submitted in Ledgerline." in text
    assert "Receipts are needed above EUR 25." in text
    assert "Travel is booked in Waypoint." in text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "not a readable PDF"),
        ("latin1.md", "Caf\xe9 menu".encode("latin-1"), "not valid utf-8"),
        ("binary.txt", b"\x00\x01\x02binary", "binary"),
        ("image.png", b"\x89PNG", "unsupported file type"),
    ],
)
def test_unreadable_files_raise_with_a_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UnreadableDocument, match=reason):
        read_document(path, name)


def test_chunk_ids_are_stable_and_survive_edits_elsewhere(tmp_path: Path) -> None:
    text = "# Page\n\n## A\n\nAlpha.\n\n## B\n\nBravo.\n"
    first = _chunks(tmp_path, "page.md", text)
    again = _chunks(tmp_path, "page.md", text)
    edited = _chunks(tmp_path, "page.md", text.replace("Alpha.", "Alpha, revised."))
    assert [c.id for c in first] == [c.id for c in again]
    assert [c.id for c in first] == [c.id for c in edited]
    assert first[0].content_hash != edited[0].content_hash
    assert first[1].content_hash == edited[1].content_hash


def test_synthetic_documents_parse_like_files() -> None:
    text = "Q: How many vacation days?\n\nA: 26 days."
    document = parse_text(text, "correction:42", "Correction: vacation")
    chunks = chunk_document(document)
    assert _titles(chunks) == ["Correction: vacation"]
    assert chunks[0].source == "correction:42"
    assert chunks[0].text == "Q: How many vacation days?\n\nA: 26 days."
