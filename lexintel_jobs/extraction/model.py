"""What extraction returns, and the light text normalisation every format goes through."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from lexintel_core.chunking import PageText
from lexintel_core.filetypes import DOCX, HTML, PDF, TEXT

__all__ = ["DOCX", "HTML", "PDF", "PDF_ENGINES", "TEXT", "ExtractedDocument", "Progress"]

PDF_ENGINES = ("pypdf", "pypdfium2")

# Called in the child after each page: (pages done, pages in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExtractedDocument:
    content_type: str  # detected from the bytes, one of PDF, TEXT, HTML, DOCX
    pages: list[PageText]  # numbered 1..n; formats without pages give one page
    engine: str  # "pypdf", "pypdfium2", "text", "html" or "docx"


def _control_table() -> dict[int, str | None]:
    # C0 and C1 controls (NUL included: PostgreSQL text refuses it) go, except tab and the
    # line breaks. A form feed stays: the chunker treats it as a hard break. A vertical tab
    # and NEL are line breaks of their own (Word's manual line break, EBCDIC's newline).
    table: dict[int, str | None] = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)])
    for keep in "\t\n\f":
        del table[ord(keep)]
    table[0x0B] = table[0x85] = "\n"
    return table


_CONTROLS = _control_table()
_SURROGATE = re.compile("[\ud800-\udfff]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def normalize_text(text: str) -> str:
    """Newlines to \\n, NFC, control characters out, trailing spaces of lines and blank lines
    at either end out.

    Deliberately light: no other character is touched (§ ¶ “ ” – — stay), runs of spaces
    inside a line stay (they can be layout), and nothing is re-wrapped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROLS)
    if _SURROGATE.search(text):
        # A lone surrogate (broken PDF font maps) cannot be stored as UTF-8.
        text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFC", text)
    return _TRAILING_SPACE.sub("", text).strip("\n")
