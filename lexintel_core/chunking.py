"""Page-aware text chunking (pure functions): chunks keep the pages and character offsets
they come from, so search results and answers can cite pages."""

from __future__ import annotations

from dataclasses import dataclass

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
    text: str
    page_start: int
    page_end: int
    char_start: int  # offsets into document_text(pages): text == document[char_start:char_end]
    char_end: int
    token_count: int


def document_text(pages: list[PageText]) -> str:
    return PAGE_SEPARATOR.join(page.text for page in pages)
