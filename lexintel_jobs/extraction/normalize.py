"""The one text normalisation step every page of every format goes through before chunking."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text"]

# pdfium's get_text_range marks a hyphen it found at a line end with U+FFFE and joins the two
# lines itself; its bounded-text call marks the same place with U+0002.
_PDFIUM_HYPHEN = "\ufffe"
_PDFIUM_BOUNDED_HYPHEN = re.compile(r"(?<=[^\W\d_])\x02(?=[^\W\d_])")
_SOFT_HYPHEN = "\u00ad"
# A token longer than this is no word: its line-end hyphen is kept.
_LONGEST_WORD = 64


def _translation() -> dict[str, str]:
    # Control characters go (NUL included: PostgreSQL text refuses it), except tab and
    # newline. A form feed, a page break inside one page's text (pages are split apart before
    # this), becomes a paragraph break. The other line breaks become newlines: CR, vertical
    # tab (Word's manual line break), NEL, U+2028.
    table: dict[int, str] = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], "")
    for keep in "\t\n":
        del table[ord(keep)]
    table[ord("\f")] = "\n\n"
    for line_break in "\r\x0b\x85\u2028":
        table[ord(line_break)] = "\n"
    # Noncharacters, which no text may contain; U+FFFE is pdfium's hyphen, handled apart.
    table.update(dict.fromkeys(range(0xFDD0, 0xFDF0), ""))
    for plane in range(17):
        table[plane << 16 | 0xFFFE] = table[plane << 16 | 0xFFFF] = ""
    del table[ord(_PDFIUM_HYPHEN)]
    # Invisible characters that split a word for search without showing: zero-width space,
    # word joiner, invisible math operators, deprecated format controls, a BOM inside text.
    # Joiners (U+200C, U+200D) and bidi marks and controls stay: Persian, Indic scripts and
    # emoji need the joiners, and mixed right-to-left and left-to-right text needs the bidi
    # characters to show in the right order; they sit between words, not inside them.
    invisible = [0x200B, *range(0x2060, 0x2065), *range(0x206A, 0x2070), 0xFEFF]
    table.update(dict.fromkeys(invisible, ""))
    # Unicode spaces become plain spaces, so that search and the chunker see a space.
    for space in [0xA0, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000]:
        table[space] = " "
    # Ligature glyphs (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ, and the Armenian ones) to their letters. NFKC for these
    # only: for the whole text it would also rewrite § ¶ ½ ² ™ and full-width forms.
    for ligature in [*range(0xFB00, 0xFB07), *range(0xFB13, 0xFB18)]:
        table[ligature] = unicodedata.normalize("NFKC", chr(ligature))
    return {chr(code): replacement for code, replacement in table.items()}


def _character_class(chars: list[str]) -> str:
    ranges: list[list[int]] = []
    for code in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    spans = (
        re.escape(chr(low)) + (f"-{re.escape(chr(high))}" if high > low else "")
        for low, high in ranges
    )
    return f"[{''.join(spans)}]"


# A regular expression finds the few characters to replace much faster than str.translate
# walks every character of the text; one with a range per plane is slow, so the noncharacters
# outside the Basic Multilingual Plane are looked for only in text that has such characters.
_TRANSLATION = _translation()
_TO_TRANSLATE = re.compile(_character_class([char for char in _TRANSLATION if char < "\U00010000"]))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_NONCHARACTER = re.compile(
    _character_class([char for char in _TRANSLATION if char >= "\U00010000"])
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SOFT_HYPHEN_AT_LINE_END = re.compile(r"\u00ad[ \t]*\n(?=[^\W\d_])")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_LINE_END_HYPHEN = re.compile(r"[-\u2010]\n(?=[^\W\d_])")
_BLANK_LINES = re.compile(r"\n{4,}")
_OPENING_PUNCTUATION = "([{\"'“‘„«‹¿¡"


def _translate(match: re.Match[str]) -> str:
    return _TRANSLATION[match.group()]


def _is_letter(char: str) -> bool:
    return char.isalpha() or unicodedata.category(char).startswith("M")


def _word_before(text: str, end: int) -> str | None:
    """The token that ends at `end` (back to a space or a pdfium hyphen), without opening
    punctuation; None when it is too long to be a word."""
    start = end
    while start > 0 and not text[start - 1].isspace() and text[start - 1] != _PDFIUM_HYPHEN:
        start -= 1
        if end - start > _LONGEST_WORD:
            return None
    return text[start:end].lstrip(_OPENING_PUNCTUATION)


def _break_hyphen(text: str, hyphen: int, after: int) -> str | None:
    """What becomes of the hyphen at `hyphen` that ends a line, the next line starting at
    `after`: "" to join the word's halves, the hyphen of a compound kept, or None when it is
    no word break at all."""
    if hyphen == 0 or after >= len(text) or not text[after].islower():
        return None
    if not (_is_letter(text[hyphen - 1]) or text[hyphen - 1].isdigit()):
        return None  # a dash after a space or punctuation, a line that is just "-"
    word = _word_before(text, hyphen)
    if word and all(_is_letter(char) for char in word):
        return ""
    return "-" if text[hyphen] == _PDFIUM_HYPHEN else text[hyphen]


def _pdfium_hyphen(match: re.Match[str]) -> str:
    text, at = match.string, match.start()
    if at == 0 or at + 1 >= len(text) or text[at - 1].isspace() or text[at + 1].isspace():
        return ""  # no word on one side: nothing to mark
    joined = _break_hyphen(text, at, at + 1)
    return "-" if joined is None else joined


def _line_end_hyphen(match: re.Match[str]) -> str:
    joined = _break_hyphen(match.string, match.start(), match.end())
    return match.group() if joined is None else joined


def normalize_text(text: str) -> str:
    """Clean text for storage, search and display, the same for every format.

    In order:
    1. A lone surrogate (broken PDF font maps; not storable as UTF-8) becomes U+FFFD, which
       stays everywhere as the honest mark of something undecodable.
    2. Line breaks become \\n: CRLF, CR, vertical tab, NEL, U+2028. Tab stays, and so does
       U+2029 (the chunker's hard break); a form feed becomes a blank line.
    3. Out: every other C0 and C1 control character (NUL included), every noncharacter
       (U+FDD0..U+FDEF and U+xFFFE, U+xFFFF in every plane), and the invisible characters
       that split words: zero-width space, word joiner, U+2061..U+2064, U+206A..U+206F, a
       BOM inside the text. Zero-width joiners and bidi marks and controls stay.
    4. Unicode spaces (U+00A0, U+2000..U+200A, U+202F, U+205F, U+3000) become plain spaces;
       the ligatures U+FB00..U+FB06 (and Armenian U+FB13..U+FB17) become their letters.
       Nothing else changes character: § ¶ “ ” – — ½ stay.
    5. pdfium's line-end hyphen mark (U+FFFE, or U+0002 between letters; pdfium has already
       joined the lines) is read as a hyphen at a line end, by rule 8 without the line break:
       "indemni\\ufffefication" gives "indemnification", "out-of\\ufffestate" "out-of-state",
       "Smith\\ufffeJones" "Smith-Jones". Beside a space or at either end it goes.
    6. Soft hyphens (U+00AD) go; one that ends a line before a letter also takes the line
       break: the two halves are one word.
    7. NFC.
    8. Trailing spaces and tabs of lines go; then a word broken at a line end ("-" or U+2010
       as the last character, a lowercase letter first on the next line, the hyphen after a
       letter or digit) is joined. The token before the hyphen decides how: letters only
       (after any opening bracket or quote) and the hyphen goes too ("indemni-\\nfication"
       gives "indemnification"); with a hyphen, digit or other character inside it is a
       compound, so the hyphen stays ("out-of-\\nstate" gives "out-of-state", "12-\\nmonth"
       "12-month"). Untouched: a capital or digit after the break ("Smith-\\nJones",
       "12-\\n13"), a dash after a space or punctuation, a line that is just "-", a blank
       line between.
    9. More than two blank lines in a row become two; blank lines at either end go.

    Runs of spaces inside a line stay (they can be layout, such as columns), leading spaces
    of lines stay (indentation), and nothing is re-wrapped. The result is a fixed point:
    normalizing it again changes nothing.
    """
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    if "\x02" in text:
        text = _PDFIUM_BOUNDED_HYPHEN.sub(_PDFIUM_HYPHEN, text)
    text = _TO_TRANSLATE.sub(_translate, text.replace("\r\n", "\n"))
    if _ASTRAL.search(text):
        text = _ASTRAL_NONCHARACTER.sub("", text)
    if _PDFIUM_HYPHEN in text:
        text = re.sub(_PDFIUM_HYPHEN, _pdfium_hyphen, text)
    if _SOFT_HYPHEN in text:
        text = _SOFT_HYPHEN_AT_LINE_END.sub("", text).replace(_SOFT_HYPHEN, "")
    text = unicodedata.normalize("NFC", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _LINE_END_HYPHEN.sub(_line_end_hyphen, text)
    return _BLANK_LINES.sub("\n\n\n", text).strip("\n")
