"""Plain text (and Markdown) and HTML: decoding and visible text."""

from __future__ import annotations

import codecs
import re
import string
from html.parser import HTMLParser

import charset_normalizer

from lexintel_core.filetypes import text_encoding_from_bytes

# Single-byte encodings of Latin-script languages. charset-normalizer cannot tell them apart
# on short texts (it calls "Café § 12 – Müller" cp1250, or even cp1125), so for this family
# we take Windows-1252, the encoding of nearly every legacy Western document.
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


def _legacy_encoding(data: bytes) -> str:
    sample = data[:_DETECTION_SAMPLE]
    high = len(sample) - len(sample.translate(None, _HIGH_BYTES))
    letters = len(sample) - len(sample.translate(None, _ASCII_LETTERS))
    if high <= letters:
        # Latin-script text is mostly ASCII letters with an accent here and there; Cyrillic,
        # Greek, Hebrew, Arabic or CJK in a legacy encoding are almost all high bytes.
        return "cp1252"
    best = charset_normalizer.from_bytes(sample).best()
    encoding = best.encoding if best is not None else "cp1252"
    if encoding in _LATIN_FAMILY or encoding.startswith(("utf", "ucs")):
        # UTF-16/32 without BOM was ruled out before; a guess of it here is noise.
        return "cp1252"
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
    charset), UTF-8, then charset-normalizer's guess with Windows-1252 for Latin scripts.
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


class _VisibleText(HTMLParser):
    """Collects visible text; blocks become line breaks, paragraphs blank lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive unescaped
        self._parts: list[str | int] = []  # text, or a break of _LINE_BREAK/_PARAGRAPH_BREAK
        self._hidden: list[str] = []  # open hidden elements
        self._pre = 0  # depth of <pre>: whitespace is kept there

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # An unclosed <head> ends where the body starts, as browsers do.
            self._hidden.clear()
        if tag in _HIDDEN:
            self._hidden.append(tag)
        elif tag == "pre":
            self._pre += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)  # <br/>, <hr/>: never hides anything

    def handle_endtag(self, tag: str) -> None:
        if tag in self._hidden:
            while self._hidden.pop() != tag:
                pass
        elif tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _CELL:
            self._parts.append("\t")
        elif tag != "br":  # </br> is read as <br> by browsers: one break is enough
            self._break(tag)

    def handle_data(self, data: str) -> None:
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
    # The stdlib parser rescans from every "<" that has no ">" after it, which is quadratic
    # on inputs like "<a<a<a...". No tag can start after the last ">", so that tail is text.
    last = html.rfind(">")
    if "<" in html[last + 1 :]:
        html = html[: last + 1] + html[last + 1 :].replace("<", "&lt;")
    parser = _VisibleText()
    parser.feed(html)  # in one piece: feeding in slices rescans unfinished constructs
    parser.close()
    return parser.text()


def read_html(data: bytes) -> str:
    return html_to_text(decode_text(data, declared=_html_declared_encoding(data)))
