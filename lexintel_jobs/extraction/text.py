"""Plain text (and Markdown) and HTML: decoding and visible text."""

from __future__ import annotations

import codecs
import math
import re
import string
import unicodedata

import charset_normalizer
from turbohtml import TokenType, tokenize

from lexintel_core.filetypes import text_encoding_from_bytes

# The single-byte encodings of European languages, which charset-normalizer cannot tell
# apart on short texts (it calls "Café § 12 – Müller" cp1250, or even cp1125), in the order
# _likeliest_european weighs them, each with the log of how common it is among the legacy
# documents of a (mostly Western) legal practice, relative to Windows-1252.
_EUROPEAN = {
    "cp1252": 0.0,
    "cp1250": math.log(0.25),
    "iso8859_2": math.log(0.1),
    "cp1251": math.log(0.2),
}
_LATIN_FAMILY = frozenset(
    {
        "ascii", "cp1250", "cp1252", "cp1254", "cp1257", "cp1258", "latin_1", "iso8859_2",
        "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14",
        "iso8859_15", "iso8859_16", "mac_roman", "mac_latin2", "mac_iceland", "mac_turkish",
        "cp437", "cp850", "cp858", "hp_roman8",
    }
)  # fmt: skip
_DETECTION_SAMPLE = 1024 * 1024
_HIGH_BYTES = bytes(range(0x80, 0x100))
_ASCII_LETTERS = string.ascii_letters.encode()

# How often each letter outside ASCII occurs in a language, in percent of its letters (rounded
# from published letter-frequency tables).
# fmt: off
_WESTERN = {
    "fr": "é1.5 è.27 ê.22 à.49 â.05 ç.09 î.05 ï.01 ô.06 ù.06 û.06 ë.01 œ.02 ü.01",
    "de": "ä.58 ö.44 ü1 ß.31 é.01",
    "es": "á.5 é.43 í.73 ñ.31 ó.83 ú.17 ü.02",
    "it": "à.6 è.26 é.03 ì.05 ò.1 ù.17",
    "pt": "á.12 â.56 ã.73 à.07 ç.53 é.34 ê.45 í.13 ó.3 ô.64 õ.1 ú.21",
    "ca": "à.5 è.4 é.3 í.2 ï.05 ò.2 ó.1 ú.1 ü.02 ç.1",
    "nl": "é.2 ë.2 ï.05 ó.05 ö.01 ü.01 è.01 á.01",
    "sv": "å1.34 ä1.8 ö1.31 é.02",
    "da": "æ.87 ø.94 å1.19 é.02",
    "no": "æ.9 ø.8 å1 é.02 ó.01 ô.01 è.01",
    "fi": "ä3.58 ö.44 å.01 š.01 ž.01",
    "is": "á1.8 ð4.39 é.65 í1.57 ó.99 ú.61 ý.23 þ1.46 æ.87 ö.78",
}
_CENTRAL = {
    "cs": "á.87 č.46 ď.1 é.63 ě1.22 í1.64 ň.1 ó.02 ř.38 š.69 ť.05 ú.05 ů.2 ý1 ž.72",
    "sk": "á2 ä.1 č1 ď.2 é.6 í1.7 ĺ.02 ľ.4 ň.1 ó.2 ô.2 ŕ.02 š.7 ť.4 ú.7 ý1.3 ž.8",
    "pl": "ą.7 ć.74 ę1.04 ł2.1 ń.36 ó.85 ś.81 ź.08 ż.71",
    "hu": "á3.4 é3.3 í.6 ó1 ö1 ő.9 ú.3 ü.6 ű.1",
    "sl": "č1.5 š1 ž.8 ć.01 đ.01",
    "hr": "č1.1 ć.6 đ.2 š1 ž.8",
    "ro": "ă3 â.6 î1.3 ş1.3 ţ1",
    "de": "ä.58 ö.44 ü1 ß.31 é.01",
    "sq": "ë8 ç.6",
}
_RUSSIAN = (
    "о10.97 е8.45 а8.01 и7.35 н6.7 т6.26 с5.47 р4.73 в4.54 л4.4 к3.49 м3.21 д2.98 п2.81 "
    "у2.62 я2.01 ы1.9 ь1.74 г1.7 з1.65 б1.59 ч1.44 й1.21 х.97 ж.94 ш.73 ю.64 ц.48 щ.36 э.32 "
    "ф.26 ъ.04 ё.04"
)
_CYRILLIC = {
    "ru": _RUSSIAN,  # and Bulgarian, near enough
    "uk": _RUSSIAN + " і5 ї.6 є.4 ґ.01",
    "be": _RUSSIAN + " і5 ў2",
    "sr": _RUSSIAN + " ј4 љ.3 њ.4 ћ.3 ђ.1 џ.1 ѓ.1 ќ.1 ѕ.05",
}
# fmt: on
# Odds (natural logarithms) of the things _likeliest_european weighs.
_LETTER_OF_NO_LANGUAGE = math.log(2e-5)  # a letter the language does not use
_OUTSIDE_ALPHABET = math.log(1e-2)  # the same, for a letter every reading shares
_COMMON_SIGN = math.log(1e-3)  # punctuation and signs of ordinary text
_RARE_SIGN = math.log(1e-6)  # any other character: ¤ ¦ ¨ ˇ ˘ ˛ ˝ ...
_UNDECODABLE = math.log(1e-8)  # U+FFFD for an undefined byte, or a C1 control character
_UNLIKELY = math.log(1e-2)
_VERY_UNLIKELY = math.log(1e-3)
_ODD = math.log(5e-2)
# Switching away from Windows-1252 needs a reading whose differing characters are, on
# average, at least this likely in some language of its encoding: bytes in no encoding must
# not read as a language by chance.
_LEAST_PLAUSIBLE = math.log(5e-4)

_COMMON_SIGNS = frozenset("§¶–—‘’“”„‚«»‹›…€£¢¥°©®™•·±×÷½¼¾¹²³µ¿¡ªº†‡‰\u00a0\u00ad")
_INSIDE_WORDS = frozenset("’·\u00ad")  # signs at home between two letters
# Letters that make a word on their own: "à", "è", Russian "в"... (Czech "č." is checked apart).
_ONE_LETTER_WORDS = frozenset("àèéóавиксуяо")
_VOWELS = frozenset("aeiouyæøœå")
# Spelling rules that tell languages apart where letter frequencies cannot: Polish writes
# "ni", "si", "zi" before a vowel, never ń ś ź; Spanish ñ always comes before a vowel; Czech
# writes ě only after b d f m n p t v; no French or Italian word starts with è ì ò ù, no
# Polish one with ą ę.
_NEVER_BEFORE_VOWEL = frozenset("ńśź")
_ONLY_BEFORE_VOWEL = frozenset("ñ")
_E_CARON_AFTER = frozenset("bdfmnptv")
_NEVER_FIRST = frozenset("èìòùąę")
_SCORED_CHARACTERS = 4096
_SCRIPT_WINDOW = 3
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def _log_frequencies(table: dict[str, str]) -> list[dict[str, float]]:
    return [
        {item[0]: math.log(float(item[1:]) / 100) for item in spec.split()}
        for spec in table.values()
    ]


_LANGUAGES = {
    "cp1252": _log_frequencies(_WESTERN),
    "cp1250": _log_frequencies(_CENTRAL),
    "iso8859_2": _log_frequencies(_CENTRAL),
    "cp1251": _log_frequencies(_CYRILLIC),
}


def _script(char: str) -> str | None:
    if not char.isalpha():
        return None
    if char < "\u0250":
        return "latin"
    return "cyrillic" if "\u0400" <= char < "\u0530" else "other"


def _is_vowel(char: str) -> bool:
    return unicodedata.normalize("NFD", char)[0].lower() in _VOWELS


def _letter_context(text: str, at: int) -> float:
    """The odds of the letter at `at` where it stands, whatever the language."""
    char = text[at]
    before = text[at - 1] if at else " "
    after = text[at + 1] if at + 1 < len(text) else " "
    script = _script(char)
    if script == "other":
        return _RARE_SIGN
    odds = 0.0
    if _script(before) not in (None, script) or _script(after) not in (None, script):
        odds += _VERY_UNLIKELY  # "Cafй": two scripts in one word
    elif any(
        _script(near) not in (None, script)
        for near in text[max(at - _SCRIPT_WINDOW, 0) : at + _SCRIPT_WINDOW + 1]
    ):
        odds += _UNLIKELY  # "И vietata": a word of another script among Latin ones
    if char.isupper() and before.islower():
        odds += _UNLIKELY  # "Ä" inside a word: "Äîãîâîð"
    lower = char.lower()
    alone = not before.isalpha() and not after.isalpha()
    if alone and lower not in _ONE_LETTER_WORDS and not (lower == "č" and after == "."):
        odds += _UNLIKELY  # a letter alone: "Ј500", "ą 2%"
    if (
        script == "latin"
        and before.isalpha()
        and after.isalpha()
        and _is_vowel(before) == _is_vowel(char) == _is_vowel(after)
    ):
        odds += _ODD  # three vowels or three consonants: "Mčre", "Úèinnost"
    vowel_after = after.isalpha() and _is_vowel(after)
    if (lower in _NEVER_BEFORE_VOWEL and vowel_after) or (
        lower in _ONLY_BEFORE_VOWEL and not vowel_after
    ):
        odds += _ODD
    if (lower == "ě" and before.lower() not in _E_CARON_AFTER) or (
        lower in _NEVER_FIRST and not before.isalpha() and after.isalpha()
    ):
        odds += _ODD
    return odds


def _plausibility(
    text: str, differing: list[int], shared: dict[str, int], languages: list[dict[str, float]]
) -> tuple[float, float]:
    """The log-odds of one reading's characters at `differing` (where it disagrees with the
    reading it is weighed against): under the language that fits it best, that language
    also having to use the `shared` letters (where the two readings agree); and under all
    the languages at once, each letter taken from the one that uses it most (a text may
    quote another language)."""
    letters: dict[str, int] = {}
    odds = 0.0
    for at in differing:
        char = text[at]
        if char.isalpha():
            odds += _letter_context(text, at)
            letter = char.lower()
            letters[letter] = letters.get(letter, 0) + 1
        elif char in _COMMON_SIGNS:
            odds += _COMMON_SIGN
            if char not in _INSIDE_WORDS and text[at - 1 : at].isalpha():
                odds += _UNLIKELY if text[at + 1 : at + 2].isalpha() else 0.0
        elif char == "\ufffd" or unicodedata.category(char) == "Cc":
            odds += _UNDECODABLE
        else:
            odds += _RARE_SIGN
    one_language = max(
        sum(n * language.get(letter, _LETTER_OF_NO_LANGUAGE) for letter, n in letters.items())
        + sum(n * _OUTSIDE_ALPHABET for letter, n in shared.items() if letter not in language)
        for language in languages
    )
    any_language = sum(
        n * max(language.get(letter, _LETTER_OF_NO_LANGUAGE) for language in languages)
        for letter, n in letters.items()
    )
    return odds + one_language, odds + any_language


def _likeliest_european(data: bytes) -> str:
    """The likeliest of the European single-byte encodings for `data`.

    Readings are weighed two at a time, Windows-1252 first, the winner against the next,
    where the two differ: how often the language that fits each reading best uses each
    letter, where the letter stands (_letter_context), how common each sign is, and how
    common the encoding is; the letters both readings share only have to belong to that
    language. Windows-1252 wins ties (most texts read the same in all), and another reading
    has to be plausible text on its own, so that bytes in no encoding stay Windows-1252 with
    U+FFFD.
    """
    positions = [match.start() for match in _HIGH_BYTE.finditer(data[:_DETECTION_SAMPLE])]
    positions = positions[:_SCORED_CHARACTERS]
    if not positions:
        return "cp1252"
    sample = data[: positions[-1] + 1 + _SCRIPT_WINDOW]  # the last one's neighbours too
    best = "cp1252"
    best_text = sample.decode(best, errors="replace")
    for encoding in _EUROPEAN:
        text = sample.decode(encoding, errors="replace")
        differing = [at for at in positions if text[at] != best_text[at]]
        if not differing:
            continue
        shared: dict[str, int] = {}
        undecodable = 0  # bytes neither reading can decode
        for at in positions:
            if best_text[at] == text[at] and text[at].isalpha():
                shared[text[at].lower()] = shared.get(text[at].lower(), 0) + 1
            elif best_text[at] == text[at] == "\ufffd":
                undecodable += 1
        odds, mixed_odds = _plausibility(text, differing, shared, _LANGUAGES[encoding])
        mixed_odds += undecodable * _UNDECODABLE
        if mixed_odds < (len(differing) + undecodable) * _LEAST_PLAUSIBLE:
            continue
        other, _ = _plausibility(best_text, differing, shared, _LANGUAGES[best])
        if odds + _EUROPEAN[encoding] > other + _EUROPEAN[best]:
            best, best_text = encoding, text
    return best


def _legacy_encoding(data: bytes) -> str:
    sample = data[:_DETECTION_SAMPLE]
    high = len(sample) - len(sample.translate(None, _HIGH_BYTES))
    letters = len(sample) - len(sample.translate(None, _ASCII_LETTERS))
    if high <= letters:
        # Latin-script text is mostly ASCII letters with an accent here and there; Cyrillic,
        # Greek, Hebrew, Arabic or CJK in a legacy encoding are almost all high bytes.
        return _likeliest_european(sample)
    results = charset_normalizer.from_bytes(sample)
    best = results.best()
    # On short texts many guesses tie; Windows-1251 is by far the commonest of them.
    cyrillic = next((result for result in results if result.encoding == "cp1251"), None)
    if (
        best is not None
        and cyrillic is not None
        and (cyrillic.chaos, -cyrillic.coherence) <= (best.chaos, -best.coherence)
    ):
        best = cyrillic
    encoding = best.encoding if best is not None else "cp1252"
    if encoding in _LATIN_FAMILY or encoding.startswith(("utf", "ucs")):
        # UTF-16/32 without BOM was ruled out before; a guess of it here is noise.
        return _likeliest_european(sample)
    return encoding


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text, with a stray invalid byte or two replaced; None when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", errors="ignore")) - bad
    # Legacy 8-bit text almost never forms a valid multi-byte sequence by chance, so each
    # one that decodes is strong evidence for UTF-8.
    return text if good >= bad else None


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Bytes to text; never fails: undecodable bytes become U+FFFD as a last resort.

    Order: byte order mark (or UTF-16 without one), the `declared` encoding (an HTML meta
    charset), UTF-8, then a legacy 8-bit encoding. Text that is mostly ASCII letters (Latin
    scripts) is read as Windows-1252, Windows-1250, ISO-8859-2 or Windows-1251, whichever
    _likeliest_european finds likeliest, Windows-1252 when in doubt; text that is mostly
    high bytes (Cyrillic, Greek, Hebrew, Arabic, CJK) as charset-normalizer guesses.
    """
    encoding = text_encoding_from_bytes(data) or declared
    if encoding is not None:
        return data.decode(encoding, errors="replace")
    text = _mostly_utf8(data)
    if text is not None:
        return text
    # cp1252 leaves five bytes undefined: they become U+FFFD, like any byte a guess misses.
    return data.decode(_legacy_encoding(data), errors="replace")


# HTML

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
# The WHATWG encoding standard reads these labels as Windows-1252.
_HTML_CP1252_LABELS = frozenset({"ascii", "us-ascii", "iso-8859-1", "latin1", "iso8859-1"})


def _html_declared_encoding(data: bytes) -> str | None:
    match = _META_CHARSET.search(data, 0, 4096)
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    if label in _HTML_CP1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A meta tag readable as ASCII cannot be UTF-16; browsers read such pages as UTF-8.
    return "utf-8" if name.startswith("utf-16") else name


# Elements whose content is not shown.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "title"})
# Elements that start on a line of their own, and those that stand apart as paragraphs.
_LINE = frozenset(
    {
        "address", "article", "aside", "br", "dd", "details", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol",
        "option", "section", "summary", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPH = frozenset(
    {"blockquote", "caption", "h1", "h2", "h3", "h4", "h5", "h6", "p", "pre", "table"}
)
_CELL = frozenset({"td", "th"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_LINE_BREAK = 1
_PARAGRAPH_BREAK = 2


class _Verbatim(str):
    """Text from inside <pre>: its spaces are kept."""

    __slots__ = ()


class _VisibleText:
    """Collects visible text from tags and text in document order; blocks become line breaks,
    paragraphs blank lines."""

    def __init__(self) -> None:
        self._parts: list[str | int] = []  # text, or a break of _LINE_BREAK/_PARAGRAPH_BREAK
        self._hidden: list[str] = []  # open hidden elements
        self._pre = 0  # depth of <pre>: whitespace is kept there

    def start(self, tag: str) -> None:
        if tag == "body":
            # An unclosed <head> ends where the body starts, as browsers do.
            self._hidden.clear()
        if tag in _HIDDEN:
            self._hidden.append(tag)
        elif tag == "pre":
            self._pre += 1
        self._break(tag)

    def end(self, tag: str) -> None:
        if tag in self._hidden:
            while self._hidden.pop() != tag:
                pass
        elif tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _CELL:
            self._parts.append("\t")
        elif tag != "br":  # </br> is read as <br> by browsers: one break is enough
            self._break(tag)

    def data(self, data: str) -> None:
        if self._hidden:
            return
        self._parts.append(_Verbatim(data) if self._pre else _HTML_SPACE.sub(" ", data))

    def _break(self, tag: str) -> None:
        if self._hidden:
            return
        if tag in _PARAGRAPH:
            self._parts.append(_PARAGRAPH_BREAK)
        elif tag in _LINE:
            self._parts.append(_LINE_BREAK)

    def text(self) -> str:
        out: list[str] = []
        pending = 0  # strongest break seen since the last text
        for part in self._parts:
            if isinstance(part, int):
                pending = max(pending, part)
                continue
            if not isinstance(part, _Verbatim) and (
                pending or not out or out[-1].endswith((" ", "\t", "\n"))
            ):
                part = part.lstrip(" ")  # no space at a line start, none doubled
            if not part:
                continue
            if pending and out:
                out[-1] = out[-1].rstrip(" \t")
                out.append("\n" * pending)
            pending = 0
            out.append(part)
        return "".join(out).strip()


def html_to_text(html: str) -> str:
    # turbohtml's WHATWG tokenizer (in C) reads the tags, text and entities in one linear pass,
    # as a browser does: script, style and title content is raw text, an unfinished tag at the
    # end is dropped. The tree builder's implied end tags are not needed here, and building the
    # tree would double the memory a large page takes.
    visible = _VisibleText()
    for token in tokenize(html, capture_attributes=False):
        if token.type is TokenType.TEXT:
            visible.data(token.data or "")
        elif token.type is TokenType.START_TAG:
            visible.start(token.tag or "")
        elif token.type is TokenType.END_TAG:
            visible.end(token.tag or "")
    return visible.text()


def read_html(data: bytes) -> str:
    return html_to_text(decode_text(data, declared=_html_declared_encoding(data)))
