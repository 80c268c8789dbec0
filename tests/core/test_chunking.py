from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexintel_core.chunking import (
    PAGE_SEPARATOR,
    Chunk,
    PageText,
    chunk_pages,
    count_tokens,
    document_text,
)

# --- helpers -------------------------------------------------------------------------------


def page_of_each_character(pages: list[PageText]) -> list[int | None]:
    """The page number of every character of document_text(pages); None for separators."""
    owners: list[int | None] = []
    for index, page in enumerate(pages):
        if index:
            owners += [None] * len(PAGE_SEPARATOR)
        owners += [page.number] * len(page.text)
    return owners


def assert_chunk_invariants(
    pages: list[PageText], chunks: list[Chunk], size_tokens: int, overlap_tokens: int
) -> None:
    document = document_text(pages)
    owners = page_of_each_character(pages)
    assert len(owners) == len(document)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    if not document.strip():
        assert chunks == []
        return
    assert chunks
    for chunk in chunks:
        assert chunk.text == document[chunk.char_start : chunk.char_end]
        assert chunk.text.strip() == chunk.text != ""
        assert chunk.token_count == count_tokens(chunk.text) <= size_tokens
        assert chunk.page_start == owners[chunk.char_start]
        assert chunk.page_end == owners[chunk.char_end - 1]
    # Chunks move forward, and what lies between or around them is whitespace only.
    assert not document[: chunks[0].char_start].strip()
    assert not document[chunks[-1].char_end :].strip()
    for before, after in itertools.pairwise(chunks):
        assert before.char_start < after.char_start
        assert before.char_end < after.char_end
        assert not document[before.char_end : after.char_start].strip()
        repeated = document[after.char_start : before.char_end]
        assert count_tokens(repeated) <= overlap_tokens


# --- strategies ----------------------------------------------------------------------------

WORDS = [
    "the", "Court", "held", "that", "plaintiff's", "claim", "under", "42", "U.S.C.", "§",
    "1983", "fails;", "see", "Smith", "v.", "Jones,", "No.", "12-345", "(2d", "Cir.", "2019).",
    "“Agreement”", "—", "–", "¶", "indemnification", "Inc.", "المحكمة", "العقد", "naïve",
    "合同", "e.g.", "Is", "it?", "Yes!",
]  # fmt: skip

sentences = st.lists(st.sampled_from(WORDS), min_size=1, max_size=15).map(
    lambda words: " ".join(words) + "."
)
paragraphs = st.lists(sentences, min_size=1, max_size=5).map(" ".join)
prose = st.lists(paragraphs, max_size=4).map("\n\n".join)
long_words = st.text(
    alphabet=st.characters(categories=["Lu", "Ll", "Nd", "Lo"]), min_size=20, max_size=400
)
short_paragraphs = st.lists(
    st.sampled_from(["a.", "§ 5", "x y", "ARTICLE I", "¶", "—"]), max_size=40
).map("\n\n".join)
blank = st.sampled_from(["", " ", "\n", "\n\n \n", "\t\u00a0\u2029"])
page_texts = st.one_of(
    prose,
    long_words,
    short_paragraphs,
    blank,
    st.text(max_size=120),  # any unicode, control characters and odd whitespace included
    st.lists(st.one_of(prose, long_words, st.text(max_size=30)), max_size=4).map(" ".join),
)


@st.composite
def page_lists(draw: st.DrawFn) -> list[PageText]:
    texts = draw(st.lists(page_texts, max_size=6))
    gaps = draw(st.lists(st.integers(1, 3), min_size=len(texts), max_size=len(texts)))
    return [
        PageText(number, text)
        for number, text in zip(itertools.accumulate(gaps), texts, strict=True)
    ]


@st.composite
def sizes(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 48))
    return size, draw(st.integers(0, size - 1))


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties ----------------------------------------------------------------------------


@FAST
@given(pages=page_lists(), size=sizes())
def test_chunks_keep_every_invariant(pages: list[PageText], size: tuple[int, int]) -> None:
    size_tokens, overlap_tokens = size
    chunks = chunk_pages(pages, size_tokens=size_tokens, overlap_tokens=overlap_tokens)
    assert_chunk_invariants(pages, chunks, size_tokens, overlap_tokens)


@settings(FAST, max_examples=60)
@given(texts=st.lists(prose, min_size=1, max_size=3), size=sizes())
def test_paragraphs_that_fit_stay_whole(texts: list[str], size: tuple[int, int]) -> None:
    pages = [PageText(number, text) for number, text in enumerate(texts, start=1)]
    chunks = chunk_pages(pages, size_tokens=size[0], overlap_tokens=size[1])
    document = document_text(pages)
    for paragraph in re.finditer(r"[^\n]+", document):
        if count_tokens(paragraph[0]) <= size[0]:
            assert any(
                c.char_start <= paragraph.start() and paragraph.end() <= c.char_end for c in chunks
            ), paragraph[0]


@settings(FAST, max_examples=50)
@given(pages=page_lists(), size=sizes())
def test_chunking_is_deterministic(pages: list[PageText], size: tuple[int, int]) -> None:
    first = chunk_pages(pages, size_tokens=size[0], overlap_tokens=size[1])
    again = chunk_pages(list(pages), size_tokens=size[0], overlap_tokens=size[1])
    assert first == again


@FAST
@given(text=st.text(max_size=300))
def test_count_tokens_counts_every_non_space_character_at_most_once(text: str) -> None:
    non_space = sum(not character.isspace() for character in text)
    assert (non_space > 0) <= count_tokens(text) <= non_space


# --- examples ------------------------------------------------------------------------------

SENTENCES = [
    "The parties entered into the Agreement on March 3, 2019.",
    "Section 4 requires written notice of any breach within thirty days.",
    "Defendant did not give notice; it simply stopped paying.",
    "Plaintiff seeks damages, interest and costs.",
    "Is the notice provision a condition precedent?",
    "The Court holds that it is.",
]


def prose_paragraph(sentences: int, start: int = 0) -> str:
    return " ".join(SENTENCES[(start + i) % len(SENTENCES)] for i in range(sentences))


def test_count_tokens_examples() -> None:
    assert count_tokens("") == 0
    assert count_tokens(" \n\t") == 0
    assert count_tokens("The court held.") == 4
    assert count_tokens("§ 1983") == 2
    assert count_tokens("42 U.S.C. § 1983") == 9
    assert count_tokens("court's") == 3  # WordPiece splits at the apostrophe too
    assert count_tokens("indemnification") == 3
    assert count_tokens("x" * 400) > 50
    assert count_tokens("1983") == 1
    assert count_tokens("000123456") == 5
    assert count_tokens("société") == 1  # the uncased model strips accents
    assert count_tokens("المحكمة") == 7  # spelled out letter by letter
    assert count_tokens("합의서") == 3
    assert count_tokens("合同法") == 3


def test_blank_documents_give_no_chunks() -> None:
    assert chunk_pages([], size_tokens=10, overlap_tokens=2) == []
    blank = [PageText(1, ""), PageText(2, " \n\n\t"), PageText(5, "")]
    assert chunk_pages(blank, size_tokens=10, overlap_tokens=2) == []


@pytest.mark.parametrize(
    ("size_tokens", "overlap_tokens", "message"),
    [
        (0, 0, "size_tokens must be at least 1"),
        (-5, 0, "size_tokens must be at least 1"),
        (10, -1, "overlap_tokens must be at least 0 and less than size_tokens"),
        (10, 10, "overlap_tokens must be at least 0 and less than size_tokens"),
        (10, 11, "overlap_tokens must be at least 0 and less than size_tokens"),
    ],
)
def test_invalid_arguments_are_rejected(
    size_tokens: int, overlap_tokens: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_pages([PageText(1, "text")], size_tokens=size_tokens, overlap_tokens=overlap_tokens)


def test_chunks_cite_the_pages_their_text_comes_from() -> None:
    pages = [
        PageText(1, prose_paragraph(4)),
        PageText(2, prose_paragraph(3, 1) + "\n\n" + prose_paragraph(2)),
        PageText(4, ""),  # an empty page keeps its number
        PageText(7, prose_paragraph(2) + " The zebra clause governs. " + prose_paragraph(3, 2)),
        PageText(8, prose_paragraph(5, 3)),
    ]
    chunks = chunk_pages(pages, size_tokens=40, overlap_tokens=8)
    assert_chunk_invariants(pages, chunks, 40, 8)
    with_zebra = [chunk for chunk in chunks if "zebra" in chunk.text]
    assert with_zebra
    assert all(chunk.page_start <= 7 <= chunk.page_end for chunk in with_zebra)
    assert {chunk.page_start for chunk in chunks} >= {1, 2, 7, 8}
    assert all(chunk.page_start != 4 for chunk in chunks)
    # A chunk may run across a page break, but never cites a page it has no text from.
    for chunk in chunks:
        assert chunk.page_start in {1, 2, 7, 8}
        assert chunk.page_end in {1, 2, 7, 8}


def test_paragraphs_that_fit_are_not_split() -> None:
    paragraphs = [prose_paragraph(count, start) for start, count in enumerate([2, 1, 3, 2, 1, 3])]
    assert all(count_tokens(paragraph) <= 40 for paragraph in paragraphs)
    pages = [PageText(1, "\n\n".join(paragraphs[:4])), PageText(2, "\n\n".join(paragraphs[4:]))]
    document = document_text(pages)
    for overlap in (0, 10):
        chunks = chunk_pages(pages, size_tokens=40, overlap_tokens=overlap)
        assert len(chunks) > 1
        for paragraph in paragraphs:
            start = document.index(paragraph)
            end = start + len(paragraph)
            assert any(c.char_start <= start and end <= c.char_end for c in chunks), paragraph


def test_sentences_are_preferred_to_words() -> None:
    pages = [PageText(1, prose_paragraph(12))]
    chunks = chunk_pages(pages, size_tokens=30, overlap_tokens=0)
    assert len(chunks) > 2
    assert all(chunk.text.endswith((".", "?", ";")) for chunk in chunks)


def test_neighbouring_chunks_overlap() -> None:
    pages = [PageText(1, prose_paragraph(20)), PageText(2, prose_paragraph(20, 3))]
    document = document_text(pages)
    chunks = chunk_pages(pages, size_tokens=30, overlap_tokens=8)
    assert_chunk_invariants(pages, chunks, 30, 8)
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert after.char_start < before.char_end
        repeated = document[after.char_start : before.char_end]
        assert 1 <= count_tokens(repeated) <= 8
        assert document[after.char_start - 1].isspace()  # starts on a word boundary


def test_overlap_close_to_the_size_still_makes_progress() -> None:
    pages = [PageText(n, prose_paragraph(15, n)) for n in range(1, 6)]
    chunks = chunk_pages(pages, size_tokens=16, overlap_tokens=15)
    assert_chunk_invariants(pages, chunks, 16, 15)
    assert len(chunks) <= count_tokens(document_text(pages))


def test_words_too_long_for_a_chunk_are_cut_hard_and_nothing_else_is() -> None:
    word = "".join(itertools.islice(itertools.cycle("abcdefghijklmnopqrstuvwxyz"), 2_000))
    fits = word[:40]  # 9 tokens
    text = f"See {word} and {fits} here."
    chunks = chunk_pages([PageText(1, text)], size_tokens=16, overlap_tokens=0)
    assert_chunk_invariants([PageText(1, text)], chunks, 16, 0)
    start, end = text.index(word), text.index(word) + len(word)
    pieces = [text[max(start, c.char_start) : min(end, c.char_end)] for c in chunks]
    assert sum(piece != "" for piece in pieces) >= len(word) // 68  # 68 letters: 16 tokens
    assert "".join(pieces) == word
    assert any(fits in chunk.text.split() for chunk in chunks)


def test_a_legal_citation_stays_in_one_chunk() -> None:
    citation = "42 U.S.C. § 1983"
    sentence = (
        "Plaintiff brings this civil rights action against the city and three of its officers "
        f"under {citation} for damages arising out of the search of her home in March."
    )
    text = " ".join([SENTENCES[0], sentence, SENTENCES[1], sentence, SENTENCES[2]])
    pages = [PageText(1, text)]
    for size, overlap in itertools.product(range(10, 41), (0, 4)):
        chunks = chunk_pages(pages, size_tokens=size, overlap_tokens=overlap)
        for match in re.finditer(re.escape(citation), text):
            inside = range(match.start() + 1, match.end())
            assert all(c.char_start not in inside and c.char_end not in inside for c in chunks)
            assert any(c.char_start <= match.start() and match.end() <= c.char_end for c in chunks)


def test_legal_characters_and_other_scripts_survive() -> None:
    text = (
        "¶ 12. The “Agreement” — as amended – governs; see § 4.2.\n\n"
        "نص العقد باللغة العربية يبقى كما هو. 合同条款。 Naïve façade."
    )
    pages = [PageText(1, text), PageText(2, text)]
    for size in (3, 8, 64):
        chunks = chunk_pages(pages, size_tokens=size, overlap_tokens=0)
        assert_chunk_invariants(pages, chunks, size, 0)
        kept = "".join("".join(chunk.text.split()) for chunk in chunks)
        assert kept == "".join(document_text(pages).split())
