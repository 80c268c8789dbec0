"""extract_file: one document from a path to pages of text. Runs inside the child process."""

from __future__ import annotations

from pathlib import Path

from lexintel_core.chunking import PageText
from lexintel_core.filetypes import HEAD_SIZE, detect_content_type
from lexintel_jobs.extraction.model import (
    DOCX,
    HTML,
    PDF,
    PDF_ENGINES,
    ExtractedDocument,
    Progress,
    normalize_text,
)
from lexintel_jobs.extraction.pdf import extract_pdf_pages
from lexintel_jobs.extraction.text import decode_text, read_html
from lexintel_jobs.extraction.word import read_docx


def _content_type(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(HEAD_SIZE)
    if head.startswith(b"PK\x03\x04"):
        # From the head alone a DOCX whose first parts are big can look like any ZIP; with the
        # whole file, read_docx decides by the archive's directory (and refuses other ZIPs).
        return DOCX
    return detect_content_type(head)


def extract_file(
    path: Path, *, pdf_engine: str = "pypdf", progress: Progress | None = None
) -> ExtractedDocument:
    """Detect the type of the file at `path` from its bytes and extract its text.

    Plain synchronous and CPU-bound: the worker runs it in a child process (see Extractor).
    `progress(done, total)` is called after each page. Raises PermanentError with a stable
    code (UNSUPPORTED, PDF_ENCRYPTED, PDF_CORRUPT, TOO_LARGE); MemoryError escapes as is.
    """
    if pdf_engine not in PDF_ENGINES:
        raise ValueError(f"unknown PDF engine {pdf_engine!r}; choose one of {PDF_ENGINES}")
    content_type = _content_type(path)
    if content_type == PDF:
        engine, texts = extract_pdf_pages(path, pdf_engine, progress)
    else:
        if content_type == DOCX:
            engine, text = "docx", read_docx(path)
        elif content_type == HTML:
            engine, text = "html", read_html(path.read_bytes())
        else:
            engine, text = "text", decode_text(path.read_bytes())
        texts = [text]
        if progress is not None:
            progress(1, 1)
    pages = [PageText(number, normalize_text(text)) for number, text in enumerate(texts, 1)]
    return ExtractedDocument(content_type=content_type, pages=pages, engine=engine)
