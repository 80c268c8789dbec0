"""Boilerplate lines (stamps, running headers, page and margin numbers) are left out of the
text chunks are searched by, and kept in the text they show and cite."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexintel_core.boilerplate import boilerplate_spans, strip_spans
from lexintel_core.chunking import PAGE_SEPARATOR, PageText, chunk_pages, document_text
from lexintel_core.settings import Settings
from tests.corpus import corpus_path
from tests.tools import require_module

STAMP = "Case 2:19-cv-01234-ABC Document 15 Filed 03/04/20 Page {n} of {of} Page ID #:{id}"
BODIES = [
    "The plaintiff filed a motion for summary judgment on all claims.",
    "The court heard the motion on March 2 and took it under submission.",
    "Defendants opposed, arguing that the motion for summary judgment was untimely.",
    "The court now grants the motion in part and denies it in part.",
    "Judgment on the first claim shall be entered for the plaintiff.",
]


def spans_of(texts: list[str]) -> list[tuple[int, int]]:
    return boilerplate_spans(texts, PAGE_SEPARATOR)


def removed(texts: list[str]) -> list[str]:
    """The boilerplate of a document, line by line."""
    document = PAGE_SEPARATOR.join(texts)
    return [
        line.strip()
        for start, end in spans_of(texts)
        for line in document[start:end].splitlines()
        if line.strip()
    ]


def kept(texts: list[str]) -> str:
    return strip_spans(PAGE_SEPARATOR.join(texts), 0, spans_of(texts))


def stamped(bodies: list[str]) -> list[str]:
    return [
        f"{body}\n{STAMP.format(n=n, of=len(bodies), id=40 + n)}"
        for n, body in enumerate(bodies, 1)
    ]


def pleading(body: str, lines: int = 28) -> str:
    return "\n".join([*(f"{n:2}" for n in range(1, lines + 1)), body])


# --- what is boilerplate -------------------------------------------------------------------


def test_a_filing_stamp_is_found_although_its_numbers_change() -> None:
    texts = stamped(BODIES)
    assert removed(texts) == [STAMP.format(n=n, of=5, id=40 + n) for n in range(1, 6)]
    assert kept(texts) == "\n".join(BODIES)


def test_a_stamp_split_over_two_lines_on_some_pages_is_found_on_every_page() -> None:
    texts = stamped(BODIES)
    for n in (2, 4):
        texts[n] = texts[n].replace(" Page ID ", " Page ID\n ")
    assert kept(texts) == "\n".join(BODIES)


def test_running_headers_and_page_numbers_are_boilerplate() -> None:
    texts = [f"DEFENDANTS' MOTION TO DISMISS\n{body}\n- {n} -" for n, body in enumerate(BODIES, 1)]
    assert kept(texts) == "\n".join(BODIES)


def test_pleading_line_numbers_go_and_numbers_in_the_text_stay() -> None:
    items = [4, 1, 9, 2, 6]  # a list item alone on a line, then a year
    texts = [pleading(f"{body}\n{n}.\n{body}\n2019") for n, body in zip(items, BODIES, strict=True)]
    assert removed(texts) == [f"{n}" for n in range(1, 29)] * 5
    assert kept(texts).startswith(f"{BODIES[0]}\n4.\n{BODIES[0]}\n2019\n")
    texts[3] = pleading(BODIES[3], lines=4)  # too short a run
    assert len(removed(texts)) == 28 * 4


def test_transcript_timestamps_beside_the_line_numbers_are_boilerplate() -> None:
    margin = "\n".join(f"0 2 : 0 {n % 10} {n}" for n in range(2, 26))
    texts = [f"{body}\n 1\n{margin}" for body in BODIES]
    assert kept(texts) == "\n".join(BODIES)


def test_documents_of_one_or_two_pages_have_only_stamps() -> None:
    for count in (1, 2):
        texts = [pleading(f"HEADER OF THE BRIEF\n{text}") for text in stamped(BODIES[:count])]
        assert removed(texts) == [
            STAMP.format(n=n, of=count, id=40 + n) for n in range(1, count + 1)
        ]
        assert spans_of([pleading(f"HEADER OF THE BRIEF\n{text}") for text in BODIES[:count]]) == []
    assert spans_of([]) == []


@pytest.mark.parametrize(
    "stamp",
    [
        "Case 8:16-ml-02693-JLS-KES Document 282-1 Filed 10/04/18 Page 2 of 50 Page ID\n #:6018",
        "Case 2:13-cr-00106-DOC Document 349 Filed 01/11/19 Page 2 of 7",
        "Case: 19-10011 Document: 00515319048 Page: 3 Date Filed: 02/24/2020",
        "Case: 18-56271, 02/19/2019, ID: 11198434, DktEntry: 14, Page 3 of 20",
    ],
)
def test_filing_stamps_are_told_by_their_form(stamp: str) -> None:
    document = f"The order follows. {stamp}\nIt is so ordered."
    assert removed([document]) == [line.strip() for line in stamp.splitlines()]
    assert kept([document]) == "The order follows.\nIt is so ordered."


def test_a_line_needs_three_pages_and_half_of_them() -> None:
    header = "IN THE UNITED STATES DISTRICT COURT"
    texts = [f"{header}\n{body}" for body in BODIES[:2]] + BODIES[2:]  # 2 of 5 pages
    assert spans_of(texts) == []
    texts = [f"{header}\n{body}" for body in BODIES[:3]] + BODIES[3:]  # 3 of 5
    assert removed(texts) == [header] * 3
    texts = [f"{header}\n{body}" for body in BODIES[:2]] + BODIES[2:4]  # 2 of 4 (too few)
    assert spans_of(texts) == []
    blank_pages = ["", " \n "] * 3  # pages without text do not count
    texts = [f"{header}\n{body}" for body in BODIES[:3]] + blank_pages
    assert removed(texts) == [header] * 3


def test_body_lines_that_merely_recur_are_kept() -> None:
    texts = [
        # Short generic lines, on every page.
        f"and\nPage(s)\n{body}\n"
        # A line that comes several times on the pages it is on: not a header.
        f"THE WITNESS: Yes.\nQ. {body}?\nTHE WITNESS: Yes.\n"
        # Sentences that share most of their words.
        f"The motion is granted as to the {claim} claim."
        for n, (body, claim) in enumerate(
            zip(BODIES, ["first", "second", "third", "fourth", "last"], strict=True), 1
        )
    ]
    assert spans_of(texts) == []


def test_numbers_alone_on_a_line_are_page_numbers_only_if_they_count_with_the_pages() -> None:
    items = ["1.", "4.", "7.", "8.", "12."]  # right before the page number
    texts = [
        f"{body}\n{item}\n{n + 4}" for n, (body, item) in enumerate(zip(BODIES, items, strict=True))
    ]
    assert removed(texts) == ["4", "5", "6", "7", "8"]
    texts = [
        f"{body}\n{amount}" for body, amount in zip(BODIES, [250, 400, 75, 250, 90], strict=True)
    ]
    assert spans_of(texts) == []


def test_a_line_found_to_be_boilerplate_goes_wherever_it_is() -> None:
    texts = [f"CASE NO. 2:19-cv-01234\n{body}" for body in BODIES]
    texts[0] = f"CASE NO. 2:19-cv-01234\n{texts[0]}"  # twice on the first page
    assert removed(texts) == ["CASE NO. 2:19-cv-01234"] * 6


def test_spans_cover_whole_lines_and_merge_across_whitespace() -> None:
    texts = [
        f"{body}\n  HEADER LINE OF PAGE {n}  \nFOOTER {n}\n\n" for n, body in enumerate(BODIES)
    ]
    document = PAGE_SEPARATOR.join(texts)
    spans = spans_of(texts)
    assert [document[start:end] for start, end in spans] == [
        f"HEADER LINE OF PAGE {n}  \nFOOTER {n}" for n in range(5)
    ]


# --- strip_spans ---------------------------------------------------------------------------


def test_strip_spans_reads_spans_at_the_slices_offset() -> None:
    document = "alpha STAMP beta\nSTAMP\ngamma delta STAMP"
    spans = [(6, 11), (17, 22), (35, 40)]
    assert [document[start:end] for start, end in spans] == ["STAMP"] * 3
    assert strip_spans(document, 0, spans) == "alpha\nbeta\ngamma delta"
    assert strip_spans(document[6:], 6, spans) == "beta\ngamma delta"
    # Spans that stick out of the slice at either end.
    assert strip_spans(document[8:37], 8, spans) == "beta\ngamma delta"
    assert strip_spans(document[12:16], 12, spans) == "beta"
    assert strip_spans(document[17:22], 17, spans) == ""
    assert strip_spans(document, 0, []) == document
    assert strip_spans(" padded ", 0, []) == "padded"


@st.composite
def document_with_spans(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]], int, int]:
    document = draw(st.text(alphabet="ab \n", max_size=60))
    cuts = sorted(draw(st.lists(st.integers(0, len(document)), max_size=8, unique=True)))
    spans = [(start, end) for start, end in zip(cuts[::2], cuts[1::2], strict=False)]
    start = draw(st.integers(0, len(document)))
    return document, spans, start, draw(st.integers(start, len(document)))


@settings(max_examples=300, deadline=None)
@given(case=document_with_spans())
def test_strip_spans_keeps_exactly_what_lies_outside_the_spans(
    case: tuple[str, list[tuple[int, int]], int, int],
) -> None:
    document, spans, start, end = case
    result = strip_spans(document[start:end], start, spans)
    # Each removed character as a space: the same words are left, and none merged.
    outside = "".join(
        " " if any(low <= at < high for low, high in spans) else char
        for at, char in enumerate(document[start:end], start)
    )
    assert result.split() == outside.split()
    assert result == result.strip()


@settings(max_examples=200, deadline=None)
@given(
    pages=st.lists(
        st.lists(
            st.sampled_from(["Page 3 of 10", "7", "", "  ", "HEADER OF THE BRIEF", "a", "x y"]),
            max_size=8,
        ).map("\n".join),
        max_size=6,
    )
)
def test_spans_are_sorted_disjoint_and_trimmed(pages: list[str]) -> None:
    document = PAGE_SEPARATOR.join(pages)
    spans = spans_of(pages)
    for start, end in spans:
        assert 0 <= start < end <= len(document)
        assert document[start:end] == document[start:end].strip()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end < start
        assert document[end:start].strip()


# --- chunks --------------------------------------------------------------------------------


def test_chunks_search_without_boilerplate_and_show_it() -> None:
    pages = [PageText(n, pleading(text)) for n, text in enumerate(stamped(BODIES * 4), 1)]
    chunks = chunk_pages(pages, size_tokens=40, overlap_tokens=8)
    spans = spans_of([page.text for page in pages])
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.search_text == strip_spans(chunk.text, chunk.char_start, spans)
        assert "Document 15" not in chunk.search_text
    assert sum("Document 15" in chunk.text for chunk in chunks) >= 20
    searched = " ".join(chunk.search_text for chunk in chunks).split()
    assert set(searched) == set(" ".join(BODIES).split())


def test_a_chunk_of_nothing_but_boilerplate_has_no_search_text() -> None:
    pages = [PageText(n, text) for n, text in enumerate(stamped(BODIES), 1)]
    chunks = chunk_pages(pages, size_tokens=12, overlap_tokens=0)
    stamps = [chunk for chunk in chunks if chunk.text.startswith("Case 2:19-cv-01234-ABC")]
    assert stamps
    assert all(chunk.search_text == "" for chunk in stamps)


# --- real filings --------------------------------------------------------------------------

# The CM/ECF header every page of a federal filing gets (often split before "#:45"), and
# the courts of appeals' one.
STAMP_LINE = re.compile(
    r"Case \d+:\d+-[a-z]+-\d+\S* +Document \d+\S* +Filed \d+/\d+/\d+ +Page \d+ of \d+"
    r"(?: +Page ?ID(?: #:\d+)?)?|#:\d+|Case: \d+-\d+ +Document: \S+ +Page: \d+.*",
    re.IGNORECASE,
)
# How much of a filing's letters may be boilerplate. The jury note is a printed form filled
# in by hand: the form's lines are on every page and most of its text layer.
MOST_REMOVED = 0.25
FORMS = {"gov.uscourts.cacd.554588.349.0.pdf": 0.5}


def stamp_chars(text: str) -> int:
    return sum(len(line) for line in text.split("\n") if STAMP_LINE.fullmatch(line.strip()))


def letters(text: str) -> int:
    return sum(char.isalpha() for char in text)


def test_no_chunk_of_a_real_filing_is_mostly_a_filing_stamp() -> None:
    require_module("pypdfium2", extra="pdfium")
    # Extraction is the worker's (as it runs at ingestion); core tests import it only here.
    from lexintel_jobs.extraction import OcrOptions, PagePlan, extract_file

    folder = corpus_path("court-filings")
    files = json.loads((folder / "files.json").read_text())["files"]
    names = sorted(entry["file"] for entry in files if entry["kind"] == "text")
    assert len(names) >= 20
    size = Settings.model_fields["chunk_size_tokens"].default
    overlap = Settings.model_fields["chunk_overlap_tokens"].default
    plan = PagePlan(ocr=OcrOptions(mode="off"))
    report = []
    stamped_files = 0
    for name in names:
        pages = extract_file(folder / name, pdf_engine="pypdfium2", plan=plan).pages
        document = document_text(pages)
        spans = boilerplate_spans([page.text for page in pages], PAGE_SEPARATOR)
        chunks = chunk_pages(pages, size_tokens=size, overlap_tokens=overlap)
        stamps = [line.strip() for line in document.split("\n") if STAMP_LINE.match(line.strip())]
        stamped_files += bool(stamps)
        for chunk in chunks:
            assert 2 * stamp_chars(chunk.search_text) <= len(chunk.search_text), (name, chunk)
            assert not STAMP_LINE.search(chunk.search_text), (name, chunk)
        shown = "\n".join(chunk.text for chunk in chunks)
        assert all(stamp in shown for stamp in stamps), name
        gone = "".join(document[start:end] for start, end in spans)
        share = letters(gone) / max(1, letters(document))
        assert share <= FORMS.get(name, MOST_REMOVED), (name, share)
        lines = sum(len(document[start:end].splitlines()) for start, end in spans)
        empty = sum(not chunk.search_text for chunk in chunks)
        report.append(
            f"{name:40} {len(pages):3} pages {lines:5} lines {len(gone):6} chars "
            f"({share:4.0%} of letters) removed; {empty} of {len(chunks)} chunks all boilerplate"
        )
    assert stamped_files >= 20
    print("\n".join(["boilerplate removed from the court filings:", *report]))
