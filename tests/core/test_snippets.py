"""Snippet choice (lexintel_core.snippets): pure functions, no database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lexintel_core.snippets import MAX_CHARS, START_MARK, STOP_MARK, Marked, best_passage, sentences

FILLER = "The parties met on a Tuesday to discuss the schedule of the project."
ANSWER = "The Licensee shall not reverse engineer the Software."


def _marked(text: str, *words: str) -> Marked:
    """`text` with every occurrence of `words` marked, as ts_headline would."""
    marks = []
    for word in words:
        at = text.find(word)
        while at >= 0:
            marks.append((at, at + len(word)))
            at = text.find(word, at + 1)
    return Marked(text, tuple(sorted(marks)))


def test_the_sentence_with_the_rarest_query_word_is_shown_and_marked() -> None:
    text = " ".join([FILLER] * 6 + [ANSWER] + [FILLER] * 6)
    marked = _marked(text, "Software", "parties")
    passage = best_passage(marked, {"softwar": 3.0, "parti": 0.2}, sentences(text))
    assert "<mark>Software</mark>" in passage.html
    assert "reverse engineer" in passage.html
    assert text.index(ANSWER) <= passage.focus < text.index(ANSWER) + len(ANSWER)


def test_similarity_chooses_when_no_word_is_shared() -> None:
    text = " ".join([FILLER, ANSWER, FILLER])
    spans = sentences(text)
    passage = best_passage(Marked(text, ()), {}, spans, similarity=[0.1, 0.7, 0.1])
    assert ANSWER in passage.html


def test_html_in_the_text_is_escaped_and_long_sentences_are_windowed() -> None:
    text = "<script>alert(1)</script> " + "word " * 200 + "indemnity " + "word " * 200
    passage = best_passage(_marked(text, "indemnity"), {"indemn": 2.0}, sentences(text))
    assert "<script>" not in passage.html
    assert "<mark>indemnity</mark>" in passage.html
    assert len(passage.html) < 2 * MAX_CHARS + 40


def test_boilerplate_sentences_are_not_shown_when_others_are() -> None:
    text = "Case 2:19-cv-01234 Document 5 Filed 01/02/20. The court grants the motion."
    kept = sentences(text, lambda sentence: not sentence.startswith("Case"))
    assert [text[a:b] for a, b in kept] == ["The court grants the motion."]


@given(st.lists(st.tuples(st.text(alphabet="ab ,.", max_size=8), st.booleans()), max_size=12))
def test_marked_headlines_parse_back_to_the_text_and_its_marks(
    pieces: list[tuple[str, bool]],
) -> None:
    headline = "".join(f"{START_MARK}{p}{STOP_MARK}" if mark and p else p for p, mark in pieces)
    marked = Marked.parse(headline)
    assert marked.text == "".join(p for p, _ in pieces)
    assert [marked.text[a:b] for a, b in marked.marks] == [p for p, mark in pieces if mark and p]
