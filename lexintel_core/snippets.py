"""Passage snippets: the sentence of a search hit that best answers the query, with the
query's words marked, HTML-safe, and the page it is on.

PostgreSQL marks the query's words in the chunk (`ts_headline` with HighlightAll, so its
stemming and stop words decide, as for ranking); this module cuts the chunk into sentences
(`chunking.sentence_spans`) and shows the run of consecutive sentences, up to MAX_CHARS, that
holds the rarest query words (inverse document frequency of the distinct words marked) and,
when given, the sentence most similar to the query by embedding; a single longer sentence is
shown as a window around its marked words.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lexintel_core.chunking import sentence_spans

_LETTER = re.compile(r"[^\W\d_]")
# Control characters around the words ts_headline marks (no stored text contains them).
START_MARK, STOP_MARK = "\x02", "\x03"
MAX_CHARS = 300  # a fragment's length at most (a longer sentence: a window around its marks)
# A snippet shows one or two fragments: the second only if it scores this share of the first.
FRAGMENT_SHARE = 0.5
# A window cut from a long sentence begins this many characters before its first marked word.
LEAD = 40
# How much a sentence's embedding similarity to the query (cosine, about 0-0.8 for MiniLM)
# counts against its share of the chunk's best lexical score (0-1).
SIMILARITY_WEIGHT = 2.0


@dataclass(frozen=True)
class Marked:
    """A chunk's text with the query's words found in it: [start, end) offsets into text."""

    text: str
    marks: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, headline: str) -> Marked:
        """From ts_headline's output with START_MARK / STOP_MARK around matches."""
        text: list[str] = []
        marks: list[tuple[int, int]] = []
        at = 0
        for piece in headline.split(START_MARK):
            word, stop, rest = piece.partition(STOP_MARK)
            if stop:
                marks.append((at, at + len(word)))
                text.append(word)
                at += len(word)
                piece = rest
            text.append(piece)
            at += len(piece)
        return cls("".join(text), tuple(marks))


@dataclass(frozen=True)
class Passage:
    html: str  # HTML-escaped, the query's words wrapped in <mark>, fragments joined by "…"
    focus: int  # offset in the chunk's text of the best fragment's rarest marked word (or start)


def _weight(word: str, idf: Mapping[str, float]) -> float:
    """The inverse document frequency of the query lexeme that `word` stems to: the longest
    lexeme `word` starts with (English stems are prefixes of their words, mostly); 1 when
    none is."""
    folded = word.casefold()
    best = max((lexeme for lexeme in idf if folded.startswith(lexeme)), key=len, default=None)
    return idf[best] if best is not None else 1.0


def sentences(text: str, search_text: str | None = None) -> list[tuple[int, int]]:
    """The sentences of a chunk's `text` worth showing: with `search_text` (the text less its
    boilerplate lines), those with a line of words in it, so a sentence that runs past a
    margin line number or a stamp still shows and a stamp alone does not; all of them when
    none has one."""
    spans = sentence_spans(text)
    if search_text is None:
        return spans
    kept = [(a, b) for a, b in spans if _searched(text[a:b], search_text)]
    return kept or spans


def _searched(sentence: str, search_text: str) -> bool:
    lines = (line.strip() for line in sentence.split("\n"))
    return any(_LETTER.search(line) and line in search_text for line in lines)


def best_passage(
    marked: Marked,
    idf: Mapping[str, float],
    spans: Sequence[tuple[int, int]],
    similarity: Sequence[float] | None = None,
    *,
    query_weight: float = 0.0,
) -> Passage:
    """The runs of consecutive sentences (`spans` of marked.text, up to MAX_CHARS together,
    or one longer sentence) that best match the query: the best, and a second one apart
    from it scoring at least FRAGMENT_SHARE of the best, in text order.

    A run scores the summed `idf` of the distinct marked words in it, as a share of
    `query_weight` (the idf of all the query's words, those found nowhere too), or of the
    best run's where that is larger; plus SIMILARITY_WEIGHT × the highest `similarity[i]`
    (cosine of sentence i and the query) among its sentences, when given. So a run with one
    common query word does not outweigh the sentence closest in meaning when the query's
    rare words are missing from the chunk. Ties go to the earlier run.
    """
    text = marked.text
    if not spans:
        return Passage(html.escape(text[:MAX_CHARS], quote=False), 0)
    runs = []
    for first in range(len(spans)):
        last = first
        while last + 1 < len(spans) and spans[last + 1][1] - spans[first][0] <= MAX_CHARS:
            last += 1
        runs.append((first, last))
    lexical = []
    for first, last in runs:
        start, end = spans[first][0], spans[last][1]
        words = {text[a:b].casefold() for a, b in marked.marks if start <= a and b <= end}
        lexical.append(sum(_weight(word, idf) for word in words))
    top = max(max(lexical), query_weight) or 1.0
    scores = [
        value / top + (SIMILARITY_WEIGHT * max(similarity[first : last + 1]) if similarity else 0.0)
        for value, (first, last) in zip(lexical, runs, strict=True)
    ]
    order = sorted(range(len(runs)), key=lambda i: (-scores[i], i))
    chosen = [runs[order[0]]]
    # A second fragment, apart from the first, when it holds query words or meaning too.
    for i in order[1:]:
        first, last = runs[i]
        if scores[i] <= 0 or scores[i] < FRAGMENT_SHARE * scores[order[0]]:
            break
        if last < chosen[0][0] or first > chosen[0][1]:
            chosen.append(runs[i])
            break
    windows = {
        run: _window(text, marked.marks, idf, spans[run[0]][0], spans[run[1]][1]) for run in chosen
    }
    start, end = windows[chosen[0]]
    inside = [(a, b) for a, b in marked.marks if start <= a and b <= end]
    focus = max(inside, key=lambda m: (_weight(text[m[0] : m[1]], idf), -m[0]), default=(start,))[0]
    fragments = " ".join(_html(text, marked.marks, *windows[run]) for run in sorted(chosen))
    return Passage(fragments.replace("… …", "…"), focus)


def _window(
    text: str,
    marks: Sequence[tuple[int, int]],
    idf: Mapping[str, float],
    start: int,
    end: int,
) -> tuple[int, int]:
    """[start, end) cut to MAX_CHARS at most, on spaces: the window that holds the marked
    words of the highest summed idf (distinct words), beginning LEAD characters before its
    first one so that the phrase they are in shows from its start."""
    if end - start <= MAX_CHARS:
        return start, end
    inside = [(a, b) for a, b in marks if start <= a and b <= end]

    def weight(left: int) -> float:
        words = {text[a:b].casefold() for a, b in inside if left <= a and b <= left + MAX_CHARS}
        return sum(_weight(word, idf) for word in words)

    lefts = [min(max(start, a - LEAD), end - MAX_CHARS) for a, _ in inside] or [start]
    left = max(lefts, key=lambda at: (weight(at), -at))
    right = min(end, left + MAX_CHARS)
    if left > start:
        space = text.find(" ", left, right)
        left = space + 1 if space >= 0 else left
    if right < end:
        space = text.rfind(" ", left, right)
        right = space if space > left else right
    return left, right


def _html(text: str, marks: Sequence[tuple[int, int]], start: int, end: int) -> str:
    out: list[str] = ["… " if start > 0 else ""]
    at = start
    for a, b in marks:
        if a < start or b > end:
            continue
        out += [html.escape(text[at:a], quote=False), "<mark>"]
        out += [html.escape(text[a:b], quote=False), "</mark>"]
        at = b
    out.append(html.escape(text[at:end], quote=False))
    if end < len(text):
        out.append(" …")
    return "".join(out)
