"""Page-aware text chunking (pure functions): chunks keep the pages and character offsets
they come from, so search results and answers can cite pages."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate, compress, count, pairwise

from lexintel_core.boilerplate import boilerplate_spans, strip_spans

# Pages are joined with this separator into one document text; chunk offsets index into it.
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PageText:
    """The text of one page; `number` is 1-based, as printed in citations."""

    number: int
    text: str


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str  # for display and citations
    # `text` without boilerplate lines (boilerplate.py: stamps, running headers, page and
    # line numbers), to embed and rank; "" when the chunk is nothing but boilerplate.
    search_text: str
    page_start: int
    page_end: int
    char_start: int  # offsets into document_text(pages): text == document[char_start:char_end]
    char_end: int
    token_count: int
    # Offsets into `text` where pages page_start + 1 ... page_end begin (empty: one page).
    page_breaks: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int:
        """The page number of the character at `offset` into `text`."""
        return self.page_start + bisect_right(self.page_breaks, offset)


def document_text(pages: list[PageText]) -> str:
    return PAGE_SEPARATOR.join(page.text for page in pages)


# BERT's basic tokenizer gives every CJK ideograph a token of its own.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Combining marks (Latin accents, Arabic harakat) and zero-width joiners are not \w, but they
# belong to the word they sit in: splitting there would overcount and allow cuts inside words.
_MARKS = (
    "\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4"
    "\u06e7\u06e8\u06ea-\u06ed\u200c\u200d"
)
# A token is one CJK ideograph, one run of word characters, or one other non-space character.
# Every non-whitespace character is in exactly one token, and because word runs are maximal,
# a slice that starts and ends on token boundaries tokenises into the same tokens.
_TOKEN = re.compile(rf"[{_CJK}]|(?:[^\W{_CJK}]|[{_MARKS}])+|[^\w\s]")
_OTHER_SPACE = re.compile(r"[^\S ]")
# Each break pattern ends where the unit after the break starts.
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*(?=\S)")  # a literal prefix scans fast
_FORM_BREAK = re.compile(r"[\f\u2029]\s*(?=\S)")
_CLAUSE_BREAK = re.compile(r"[;؛]\s+(?=\S)")
# A lower-case word, a number or § after a period continues the sentence ("see id. at 4",
# "No. 12", "42 U.S.C. § 1983"); non-ASCII lower case is checked afterwards.
_SENTENCE_BREAK = re.compile(r"[.!?؟][\"')\]»”’]?\s+(?=[^\sa-z0-9§¶])")
_CITATION_MARK = re.compile(r"[§¶]")
# The gaps inside "42 U.S.C.", "347 U.S. 483" and "No. 12".
_CITATION_GAPS = (re.compile(r"[0-9]\s+(?=[A-Z]\S*\.)"), re.compile(r"\.\s+(?=[0-9])"))

# How good a cut between two units is, best last.
_HARD, _WEAK, _SPACE, _SENTENCE, _PARAGRAPH = range(5)

# Words that end with a period without ending a sentence ("Smith v. Jones", "No. 12",
# "Acme Inc."); single letters ("U.S.C.", "e.g.", initials) are handled separately.
# fmt: off
_ABBREVIATIONS = frozenset({
    "v", "vs", "No", "Nos", "Inc", "Co", "Corp", "Ltd", "Mr", "Mrs", "Ms", "Dr", "Jr", "Sr", "St",
    "Art", "art", "Sec", "sec", "Secs", "para", "paras", "cf", "al", "Fed", "Supp", "Cir", "App",
    "Stat", "Cal", "Ct", "Rev", "Reg", "ed", "Ed", "Ann", "Gen", "Civ", "Crim", "Proc", "Evid",
    "Const", "amend", "Amend", "ch", "cl", "pp", "Dept", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul",
    "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
})
# fmt: on


def _piece_cost(token: str) -> int:
    if not token.isascii():
        # The uncased model strips accents ("société" reads as "societe"); other scripts have
        # few pieces in its vocabulary, so it spells their words out letter by letter.
        decomposed = unicodedata.normalize("NFD", token)
        stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
        if not stripped.isascii():
            # Counted on the token itself: NFD turns one Hangul syllable into several jamo.
            return max(1, sum(not unicodedata.combining(c) for c in token))
        token = stripped
    n = len(token)
    if n <= 4:
        return 1
    if token.isalpha():
        return 1 if n <= 8 else 1 + (n - 5) // 4  # 1 + ceil((n - 8) / 4)
    if token.isdigit():
        return (n + 1) // 2
    return (2 * n + 2) // 3  # identifiers that mix letters, digits and underscores


def count_tokens(text: str) -> int:
    """Approximate how many WordPiece tokens all-MiniLM-L6-v2 makes of `text`.

    Pure Python and linear, with no tokenizer download. Like BERT's basic tokenizer it splits
    on whitespace and punctuation: every punctuation or symbol character (`.`, `§`, `“`, `—`)
    and every CJK ideograph counts as one token. A run of word characters (accents stripped,
    as the uncased model does) counts as:

    - a word of ASCII letters: 1 token up to 8 letters, plus 1 for every further 4 letters
      started, because WordPiece splits long and rare words ("indemnification": 3);
    - a number: 1 token up to 4 digits ("1983"), else 1 per 2 digits started;
    - a mix of letters, digits and underscores longer than 4 characters: 2 per 3 characters;
    - a word in another script (Arabic, Cyrillic, ...): 1 token per letter, because the
      model's vocabulary spells such words out letter by letter.

    The [CLS]/[SEP] tokens are not counted. Measured against the model's own tokenizer on
    256-token chunks of English legal and licence text, the real count is usually a little
    lower (median 93%) but now and then up to ~15% higher; Arabic and numbers come out close,
    long compound words (German) low. Keep some headroom below the model's window.
    """
    return sum(map(_piece_cost, _TOKEN.findall(text)))


class _CostCache(dict[str, int]):
    # Documents repeat their words, so each distinct word is tokenised once.
    def __missing__(self, unit: str) -> int:
        cost = self[unit] = count_tokens(unit)
        return cost


def _split_word(word: str, size_tokens: int) -> list[str]:
    """Cut a word that costs more than `size_tokens` into pieces that each cost at most that,
    each about as long as that allows, so the word takes as few hard cuts as it can."""
    pieces: list[str] = []
    at = 0
    while at < len(word):
        # No piece longer than 4 * size + 4 characters costs size or less (see _piece_cost).
        low, high = 1, min(len(word) - at, 4 * size_tokens + 4)
        while low < high:
            middle = (low + high + 1) // 2
            if _piece_cost(word[at : at + middle]) <= size_tokens:
                low = middle
            else:
                high = middle - 1
        pieces.append(word[at : at + low])
        at += low
    return pieces


class _Units:
    """The document as units (whitespace-separated words, or the tokens and word pieces of
    words too long for a chunk), with prefix costs and the rank of the cut before each unit.

    Chunks start and end on unit boundaries, so a chunk costs the sum of its units: tokens
    never span whitespace, and a token boundary stays one when the text is cut there. Only
    two pieces of one word would tokenise differently together, so they never share a chunk.
    Everything done per unit runs in C (split, map, accumulate); Python only visits breaks,
    citation marks and words too long for a chunk.
    """

    def __init__(self, doc: str, page_breaks: list[int], size_tokens: int) -> None:
        # Mapping every whitespace character to a space keeps offsets and lets str.split do
        # the work of a regex.
        spaced = _OTHER_SPACE.sub(" ", doc)
        parts = spaced.split(" ")
        self.units = list(filter(None, parts))
        self.starts = list(
            compress(accumulate(map((1).__add__, map(len, parts)), initial=0), parts)
        )
        costs = list(map(_CostCache().__getitem__, self.units))
        self.pieces: list[int] = []  # units that continue the word of the unit before
        # The rank of the cut before the unit that starts at a position, where not _SPACE.
        self.ranks: dict[int, int] = {}
        if costs and max(costs) > size_tokens:
            costs = self._split(costs, size_tokens)
        self.length = len(self.starts)
        self.cum = list(accumulate(costs, initial=0))
        self._rank_citations(doc)
        self.ranks.update(dict.fromkeys(map(_end, _CLAUSE_BREAK.finditer(doc)), _SENTENCE))
        self._rank_sentences(doc, spaced)
        paragraphs = list(map(_end, _PARAGRAPH_BREAK.finditer(doc)))
        if "\f" in doc or "\u2029" in doc:
            paragraphs += map(_end, _FORM_BREAK.finditer(doc))
        for position in page_breaks:
            unit = bisect_left(self.starts, position)
            if unit < self.length:
                paragraphs.append(self.starts[unit])
        self.ranks.update(dict.fromkeys(paragraphs, _PARAGRAPH))
        self.sentences = sorted(at for at, rank in self.ranks.items() if rank >= _SENTENCE)
        self.paragraphs = [at for at in self.sentences if self.ranks[at] == _PARAGRAPH]

    def _split(self, costs: list[int], size: int) -> list[int]:
        """Replace the units that cost more than `size` by their tokens and word pieces."""
        units, starts = self.units, self.starts
        self.units, self.starts = [], []
        new_costs: list[int] = []
        done = 0
        for big in compress(count(), map(size.__lt__, costs)):
            self.units += units[done:big]
            self.starts += starts[done:big]
            new_costs += costs[done:big]
            done = big + 1
            for match in _TOKEN.finditer(units[big]):
                at = starts[big] + match.start()
                token = match.group()
                pieces = _split_word(token, size) if _piece_cost(token) > size else [token]
                for number, piece in enumerate(pieces):
                    if at > starts[big]:
                        self.ranks[at] = _HARD
                    if number:
                        self.pieces.append(len(self.starts))
                    self.units.append(piece)
                    self.starts.append(at)
                    new_costs.append(_piece_cost(piece))
                    at += len(piece)
        self.units += units[done:]
        self.starts += starts[done:]
        return new_costs + costs[done:]

    def _rank_citations(self, doc: str) -> None:
        # A citation ("42 U.S.C. § 1983", "¶ 4") reads as one word: cutting inside is poor.
        for gap in _CITATION_GAPS:
            self.ranks.update(dict.fromkeys(map(_end, gap.finditer(doc)), _WEAK))
        for match in _CITATION_MARK.finditer(doc):
            at = match.start()
            if at > 0 and doc[at - 1].isspace():
                self.ranks[at] = _WEAK
            if at + 1 < len(doc) and doc[at + 1].isspace():
                unit = bisect_left(self.starts, at + 1)
                if unit < self.length:
                    self.ranks[self.starts[unit]] = _WEAK

    def _rank_sentences(self, doc: str, spaced: str) -> None:
        ranks = self.ranks
        for match in _SENTENCE_BREAK.finditer(doc):
            following = match.end()
            if doc[following].islower():
                continue
            if _after_abbreviation(doc, spaced, match.start()):
                ranks.setdefault(following, _WEAK)
            else:
                ranks[following] = _SENTENCE

    def rank(self, unit: int) -> int:
        return self.ranks.get(self.starts[unit], _SPACE)

    def unit_at(self, position: int) -> int:
        return bisect_left(self.starts, position)

    def best_cut(self, first: int, after: int, size_tokens: int) -> tuple[int, int]:
        """The best end (exclusive, after unit `after`) for a chunk from unit `first`, with its
        rank; `after` itself when the units up to `after` do not fit.

        Takes the best cut the size allows, the latest of equals, so a paragraph that fits is
        never split: either it ends inside the window, or the cut falls before it and it
        starts the next window.
        """
        cum = self.cum
        limit = bisect_right(cum, cum[first] + size_tokens, first + 1) - 1
        piece = bisect_right(self.pieces, first)
        if piece < len(self.pieces):
            limit = min(limit, self.pieces[piece])
        if limit >= self.length:
            return self.length, _PARAGRAPH
        if limit <= after:
            return after, _HARD
        for breaks, rank in ((self.paragraphs, _PARAGRAPH), (self.sentences, _SENTENCE)):
            latest = bisect_right(breaks, self.starts[limit]) - 1
            if latest >= 0 and breaks[latest] > self.starts[after]:
                return self.unit_at(breaks[latest]), rank
        weak = limit
        for unit in range(limit, after, -1):
            rank = self.rank(unit)
            if rank == _SPACE:
                return unit, _SPACE
            if rank == _WEAK and weak == limit:
                weak = unit
        return weak, self.rank(weak)

    def overlap_start(self, previous: int, fresh: int, budget: int) -> int:
        """Where a chunk that goes on from unit `fresh` starts to repeat at most `budget` tokens
        of the chunk that starts at unit `previous`: on a sentence, else a word boundary.
        """
        cum = self.cum
        low = max(previous + 1, bisect_left(cum, cum[fresh] - budget, 0, fresh))
        piece = bisect_right(self.pieces, fresh) - 1
        if piece >= 0:
            low = max(low, self.pieces[piece])
        if budget <= 0 or low >= fresh:
            return fresh
        # Whole sentences read best, but not when they leave most of the overlap unused.
        sentence = bisect_left(self.sentences, self.starts[low])
        if sentence < len(self.sentences) and self.sentences[sentence] < self.starts[fresh]:
            start = self.unit_at(self.sentences[sentence])
            if 2 * (cum[fresh] - cum[start]) >= budget:
                return start
        # No overlap rather than one that starts inside a word or a citation.
        return next((unit for unit in range(low, fresh) if self.rank(unit) >= _SPACE), fresh)

    def next_chunk(self, previous: int, fresh: int, size: int, overlap: int) -> tuple[int, int]:
        """Start and end of the chunk that goes on from unit `fresh`, the end of the chunk that
        starts at unit `previous`.

        The full overlap is taken when the chunk can still end as well as it could without
        one; otherwise the chunk ends there and repeats only what room is left, so an overlap
        never splits a paragraph (or sentence) that would fit.
        """
        end, rank = self.best_cut(fresh, fresh, size)
        start = self.overlap_start(previous, fresh, overlap)
        if start < fresh:
            overlapped_end, overlapped_rank = self.best_cut(start, fresh, size)
            if overlapped_end > fresh and overlapped_rank >= rank:
                return start, overlapped_end
        room = size - (self.cum[end] - self.cum[fresh])
        return self.overlap_start(previous, fresh, min(overlap, room)), end


def _after_abbreviation(doc: str, spaced: str, mark: int) -> bool:
    """Whether the period at `mark` ends an abbreviation ("v.", "No.", "U.S.C.", initials)
    rather than a sentence. `spaced` is `doc` with every whitespace character a space."""
    # After a closing quote or bracket ("No.”") the period ends a sentence regardless.
    if doc[mark] != "." or spaced[mark + 1] != " ":
        return False
    # Abbreviations are short: look back no further than 12 characters.
    space = spaced.rfind(" ", max(0, mark - 12), mark)
    unit = doc[space + 1 : mark] if space >= 0 or mark < 12 else ""
    word = unit.rpartition(".")[2].lstrip("([{\"'“‘")  # "C" of "U.S.C.", "No" of "(No."
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The sentences of `text` as [start, end) offsets, trimmed of whitespace: cut where
    chunks prefer to be cut (paragraph and page breaks, sentence ends; not after "v.",
    "No.", "U.S.C." and other abbreviations)."""
    spaced = _OTHER_SPACE.sub(" ", text)
    cuts = {0, len(text)}
    for pattern in (_PARAGRAPH_BREAK, _FORM_BREAK):
        cuts.update(map(_end, pattern.finditer(text)))
    for match in _SENTENCE_BREAK.finditer(text):
        following = match.end()
        if not text[following].islower() and not _after_abbreviation(text, spaced, match.start()):
            cuts.add(following)
    spans = []
    ordered = sorted(cuts)
    for start, end in pairwise(ordered):
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
    return spans


def _end(match: re.Match[str]) -> int:
    return match.end()


def chunk_pages(pages: list[PageText], *, size_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Cut the text of `pages` into chunks of at most `size_tokens` tokens (`count_tokens`).

    Chunks end at the best cut the size allows: a paragraph or page break, else a sentence
    end, else whitespace, and only inside a word too long for any chunk. Each chunk after the
    first repeats about `overlap_tokens` tokens from the end of the one before, starting on a
    sentence or word boundary. Chunks never start or end with whitespace; together they cover
    every non-whitespace character of `document_text(pages)`, which their offsets index.
    Their `search_text` leaves out the document's boilerplate lines (boilerplate.py).
    """
    if size_tokens < 1:
        raise ValueError(f"size_tokens must be at least 1, got {size_tokens}")
    if not 0 <= overlap_tokens < size_tokens:
        raise ValueError(
            f"overlap_tokens must be at least 0 and less than size_tokens ({size_tokens}), "
            f"got {overlap_tokens}"
        )
    doc = document_text(pages)
    page_starts = list(
        accumulate((len(page.text) + len(PAGE_SEPARATOR) for page in pages), initial=0)
    )
    units = _Units(doc, [start - len(PAGE_SEPARATOR) for start in page_starts[1:-1]], size_tokens)
    boilerplate = boilerplate_spans([page.text for page in pages], PAGE_SEPARATOR)
    chunks: list[Chunk] = []
    first, end = 0, units.best_cut(0, 0, size_tokens)[0] if units.length else 0
    while end > first:
        char_start = units.starts[first]
        char_end = units.starts[end - 1] + len(units.units[end - 1])
        text = doc[char_start:char_end]
        first_page = bisect_right(page_starts, char_start) - 1
        chunks.append(
            Chunk(
                ordinal=len(chunks),
                text=text,
                search_text=strip_spans(text, char_start, boilerplate),
                page_start=pages[first_page].number,
                page_end=pages[bisect_right(page_starts, char_end - 1) - 1].number,
                char_start=char_start,
                char_end=char_end,
                token_count=units.cum[end] - units.cum[first],
                page_breaks=tuple(
                    start - char_start
                    for start in page_starts[first_page + 1 : -1]
                    if start < char_end
                ),
            )
        )
        if end == units.length:
            break
        first, end = units.next_chunk(first, end, size_tokens, overlap_tokens)
    return chunks
