"""Boilerplate of a document (pure functions): the court's filing stamp, running headers and
footers, page numbers and the line numbers down the margin of pleading paper.

Printed on every page, it would make every chunk of a document look alike to search. Chunks
keep it in their text (for display and citations) and leave it out of their search text
(chunking.Chunk.search_text).

Boilerplate is:

- a *filing stamp*: the header that the federal courts' CM/ECF system prints on every page
  it files ("Case 2:19-cv-01234-ABC Document 15 Filed 03/04/20 Page 3 of 10 Page ID #:45",
  "Case: 19-10011 Document: 00515319048 Page: 3 Date Filed: 02/24/2020", the Ninth
  Circuit's "Case: 18-56271, 02/19/2019, ID: 11198434, DktEntry: 14, Page 3 of 20"), told by
  its form, also where a line break splits it, on any page of any document;
- a *repeated line*: a line whose shape (digit runs as one placeholder, a roman page number
  between dashes too, whitespace collapsed, case folded, so "Page 3 of 10" and "Page 4 of 10"
  match) occurs exactly once on at least half of the pages that have text, and on at least
  3 of them. Two adjacent lines read as one count too (where neither line does on its own),
  so a header that the PDF splits over two lines on some pages and keeps whole on others is
  caught either way. "Exactly once" is what tells a header from a body line that merely
  recurs: "THE WITNESS: Yes." in a transcript comes several times on most pages it is on.
  The shape must say something: it has a digit, or a letter and at least 12 characters; a
  bare "and" or "Page(s)" that recurs is left alone. A line of numbers alone ("7", "- 7 -",
  "#:6018") must also count up with the pages, as page numbers and page IDs do and the
  numbers of a list or a table do not;
- a *margin number*: a line without letters whose last number continues a count by one from
  the line before or after it, in a run of at least 5 such lines ("1" ... "28" down pleading
  paper, "0 2 : 0 3 14" timestamps beside a transcript's line numbers), when at least half
  of the pages (at least 3) have such a run. A list or a table rarely puts 5 consecutive
  numbers on lines of their own.

In a document with fewer than 3 pages of text only stamps are found: nothing can be told to
repeat. A shape found to be boilerplate is boilerplate wherever it occurs in the document (a
case number that the caption prints like the footer goes too).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

_MIN_PAGES = 3
_MIN_CHARS = 12  # a shape without digits shorter than this is too generic to remove
_MIN_RUN = 5  # margin numbers

_DIGITS = re.compile(r"\d+")
# A page number in roman numerals between dashes ("-ii-"), as in a brief's table of contents.
_ROMAN_PAGE = re.compile(r"(?<=-)\s*[ivxl]+\s*(?=-)", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
# The last number of a line; six digits at most, so int() stays cheap.
_LAST_NUMBER = re.compile(r"(?<!\d)(\d{1,6})\D*\Z")
_DATE = r"\d{1,2}/\d{1,2}/\d{2,4}"
_STAMP = re.compile(
    "|".join(
        [
            # District courts: the case number may carry judges' initials ("-JLS-KES").
            rf"Case\s+\d+:\d+-[a-z]+-\d+(?:-\w+)*\s+Document\s+\d+(?:-\d+)?\s+Filed\s+{_DATE}"
            r"\s+Page\s+\d+\s+of\s+\d+(?:\s+Page\s*ID\s*#?:?\s*\d+)?",
            rf"Case:\s+\d+-\d+\s+Document:\s+\d+\s+Page:\s+\d+\s+Date\s+Filed:\s+{_DATE}",
            rf"Case:\s+\d+-\d+,\s+{_DATE},\s+ID:\s+\d+,\s+DktEntry:\s+[\d.-]+,"
            r"\s+Page\s+\d+\s+of\s+\d+",
        ]
    )
)


@dataclass(frozen=True)
class _Line:
    start: int  # offsets of the line's text, surrounding whitespace excluded
    end: int
    text: str

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def _shape(text: str) -> str:
    shape = _DIGITS.sub("0", text)
    if "-" in shape:
        shape = _ROMAN_PAGE.sub("0", shape)
    return " ".join(shape.split()).casefold()


def _says_something(shape: str) -> bool:
    if _DIGITS.search(shape):
        return True
    return len(shape) >= _MIN_CHARS and _LETTER.search(shape) is not None


def _recurs(pages: int, total: int) -> bool:
    return pages >= _MIN_PAGES and 2 * pages >= total


def _lines(text: str, offset: int) -> list[_Line]:
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            start = offset + len(line) - len(line.lstrip())
            lines.append(_Line(start, start + len(stripped), stripped))
        offset += len(line) + 1
    return lines


def _margin_numbers(lines: list[_Line]) -> set[int]:
    """Indices of `lines` in runs of at least _MIN_RUN letterless lines counting up by one."""
    values: list[int | None] = []
    for line in lines:
        match = None if _LETTER.search(line.text) else _LAST_NUMBER.search(line.text)
        values.append(int(match.group(1)) if match else None)
    found: set[int] = set()
    start = 0
    for index in range(1, len(values) + 1):
        before = values[index - 1]
        if index < len(values) and before is not None and values[index] == before + 1:
            continue
        if index - start >= _MIN_RUN:
            found.update(range(start, index))
        start = index
    return found


def _page_offset(window: tuple[_Line, ...], page: int) -> int | None:
    """None for lines with letters. For a line of numbers alone, its last number less the
    page's index, which is the same on every page for page numbers ("7", "- 7 -") and page
    IDs ("#:6018"), and not for the numbers of a list or a table ("1.", "250")."""
    text = window[-1].text
    if any(_LETTER.search(line.text) for line in window):
        return None
    match = _LAST_NUMBER.search(text)
    return int(match.group(1)) - page if match else None


def _windows(lines: list[_Line]) -> list[tuple[str, tuple[_Line, ...]]]:
    """Each line, and each two adjacent lines read as one, with their shapes."""
    shapes = list(map(_shape, (line.text for line in lines)))
    windows: list[tuple[str, tuple[_Line, ...]]] = list(zip(shapes, zip(lines), strict=True))
    windows += [
        (f"{first} {second}", pair)
        for (first, second), pair in zip(pairwise(shapes), pairwise(lines), strict=False)
    ]
    return windows


def boilerplate_spans(page_texts: Sequence[str], separator: str) -> list[tuple[int, int]]:
    """The boilerplate lines of a document (see the module's docstring for the rules).

    `page_texts` are the document's pages in order; the result is a sorted list of
    non-overlapping character ranges [start, end) into `separator.join(page_texts)` (the
    chunker's document_text). The ranges cover whole lines (a stamp: the stamp) without the
    whitespace around them; ranges separated by whitespace only are merged into one.
    """
    document = separator.join(page_texts)
    spans = [match.span() for match in _STAMP.finditer(document)]
    starts = accumulate((len(text) + len(separator) for text in page_texts), initial=0)
    pages = [_lines(text, offset) for text, offset in zip(page_texts, starts, strict=False)]
    numbered = [(number, lines) for number, lines in enumerate(pages) if lines]
    total = len(numbered)
    if total < _MIN_PAGES:
        return _merge(document, spans)

    margins = [_margin_numbers(lines) for _, lines in numbered]
    if _recurs(sum(map(bool, margins)), total):
        for (_, lines), found in zip(numbered, margins, strict=True):
            spans += (lines[index].span for index in found)
            lines[:] = [line for index, line in enumerate(lines) if index not in found]

    windows = [(number, _windows(lines)) for number, lines in numbered]
    once: Counter[tuple[str, int | None]] = Counter()
    for number, page in windows:
        counts = Counter(shape for shape, _ in page)
        once.update(
            (shape, _page_offset(window, number)) for shape, window in page if counts[shape] == 1
        )
    repeated = {
        shape
        for (shape, _), count in once.items()
        if _recurs(count, total) and _says_something(shape)
    }
    for _, page in windows:
        for shape, window in page:
            # Two lines count together only where neither does alone: else a footer would
            # take along whatever line comes before it on every page.
            if shape in repeated and (
                len(window) == 1 or not any(_shape(line.text) in repeated for line in window)
            ):
                spans += (line.span for line in window)
    return _merge(document, spans)


def _merge(document: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(set(spans)):
        if merged and (start <= merged[-1][1] or document[merged[-1][1] : start].isspace()):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def strip_spans(text: str, offset: int, spans: Sequence[tuple[int, int]]) -> str:
    """`text`, the slice document[offset : offset + len(text)], without the parts that lie in
    `spans` (sorted, non-overlapping [start, end) ranges into the document, as from
    boilerplate_spans).

    Each removed part becomes a line break, so the words around it stay apart; whitespace
    around the kept parts is dropped, so the result neither starts nor ends with whitespace.
    "" when nothing but whitespace is left.
    """
    end = offset + len(text)
    kept: list[str] = []
    at = offset
    for start, stop in spans[bisect_right(spans, offset, key=_span_end) :]:
        if start >= end:
            break
        kept.append(text[at - offset : max(start, offset) - offset])
        at = min(stop, end)
    kept.append(text[at - offset :])
    return "\n".join(filter(None, (part.strip() for part in kept)))


def _span_end(span: tuple[int, int]) -> int:
    return span[1]
