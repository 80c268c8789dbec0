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
    stamp = "Case 2:19-cv-01234 Document 5 Filed 01/02/20."
    text = f"{stamp} The court grants the motion."
    kept = sentences(text, search_text="The court grants the motion.")
    assert [text[a:b] for a, b in kept] == ["The court grants the motion."]


def test_a_sentence_that_runs_past_margin_line_numbers_is_shown() -> None:
    # Pleading paper: the margin's line numbers are boilerplate, left out of the search text,
    # and the text layer puts them inside the sentence that runs past them.
    text = "THE CLERK: Sir, in Count One of the Indictment,\n7\n8\nyou are charged with a felony."
    search_text = "THE CLERK: Sir, in Count One of the Indictment,\nyou are charged with a felony."
    assert [text[a:b] for a, b in sentences(text, search_text)] == [text]


def test_a_sentence_close_in_meaning_beats_one_sharing_only_a_common_word() -> None:
    # "am I allowed to keep a kitten": "keep" is in the chunk (a common word), "kitten" in
    # no chunk at all; the sentence about the cat is the closest in meaning.
    chore = "The Tenant shall keep the Premises clean and replace light bulbs as needed."
    cat = "The Landlord consents to one domestic cat weighing under twenty-five pounds."
    text = " ".join([chore, FILLER, FILLER, FILLER, cat])
    spans = sentences(text)
    similarity = [0.1, 0.0, 0.0, 0.0, 0.45]
    idf = {"keep": 1.0}
    query_weight = 1.0 + 6.0 + 0.5  # keep, kitten (in no chunk), allow
    passage = best_passage(_marked(text, "keep"), idf, spans, similarity, query_weight=query_weight)
    assert cat in passage.html
    assert "keep" not in passage.html
    # Without the query's weight, the one marked word would count as a full match.
    passage = best_passage(_marked(text, "keep"), idf, spans, similarity)
    assert passage.html.startswith("The Tenant shall <mark>keep</mark>")


def test_a_long_sentence_is_cut_to_begin_shortly_before_its_best_words() -> None:
    phrase = "the Registration of Copyright (No. PA 1-900-321); the Assignment by Lecrae Moore"
    text = "word " * 100 + phrase + " of his copyright ownership" + " word" * 100 + "."
    marked = _marked(text, "Registration", "Assignment", "Lecrae", "Moore", "ownership")
    idf = {"registr": 3.0, "assign": 2.0, "lecra": 5.0, "moor": 4.0, "ownership": 2.0}
    passage = best_passage(marked, idf, sentences(text))
    shown = passage.html.replace("<mark>", "").replace("</mark>", "")
    assert phrase in shown
    assert shown.startswith("… word word")  # about LEAD characters before the first mark


@given(st.lists(st.tuples(st.text(alphabet="ab ,.", max_size=8), st.booleans()), max_size=12))
def test_marked_headlines_parse_back_to_the_text_and_its_marks(
    pieces: list[tuple[str, bool]],
) -> None:
    headline = "".join(f"{START_MARK}{p}{STOP_MARK}" if mark and p else p for p, mark in pieces)
    marked = Marked.parse(headline)
    assert marked.text == "".join(p for p, _ in pieces)
    assert [marked.text[a:b] for a, b in marked.marks] == [p for p, mark in pieces if mark and p]


def test_sentences_do_not_end_at_abbreviations_inside_brackets_or_quotes() -> None:
    text = "The Registration of Copyright (No. PA 1-900-321) is valid. See 17 U.S.C. § 410(c)."
    assert [text[a:b] for a, b in sentences(text)] == [
        "The Registration of Copyright (No. PA 1-900-321) is valid.",
        "See 17 U.S.C. § 410(c).",
    ]
