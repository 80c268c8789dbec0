"""extract_file: one document from a path to pages of text. Runs inside the child process."""

from __future__ import annotations

from pathlib import Path

from lexintel_core.filetypes import HEAD_SIZE, HTML, PDF, TEXT, detect_content_type
from lexintel_jobs.extraction import office
from lexintel_jobs.extraction.model import PDF_ENGINES, normalize_text
from lexintel_jobs.extraction.pages import (
    Emit,
    Event,
    ExtractedDocument,
    PageDone,
    PageResult,
    PageSource,
    assemble,
)
from lexintel_jobs.extraction.pdf import PagePlan, extract_pdf_pages
from lexintel_jobs.extraction.text import decode_text, read_html


def _content_type(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(HEAD_SIZE)
    if head.startswith(b"PK\x03\x04"):
        # From the head alone a DOCX whose first parts are big can look like any ZIP; the
        # archive's directory decides (and other ZIPs are refused).
        return office.zip_content_type(path)
    return detect_content_type(head)


def stream_file(
    path: Path, *, pdf_engine: str, plan: PagePlan, timeout_seconds: float, emit: Emit
) -> tuple[str, str, int]:
    """Detect the type of the file at `path` from its bytes and report its pages through
    `emit` (pages.py: Reading, OcrStarted, PageDone); (content type, engine, page count).

    Plain synchronous and CPU-bound: the worker runs it in a child process (see Extractor).
    Raises PermanentError with a stable code (UNSUPPORTED, PDF_ENCRYPTED, PDF_CORRUPT,
    TOO_LARGE, OCR_UNAVAILABLE, CONVERTER_UNAVAILABLE, TIMEOUT); MemoryError escapes as is.
    """
    if pdf_engine not in PDF_ENGINES:
        raise ValueError(f"unknown PDF engine {pdf_engine!r}; choose one of {PDF_ENGINES}")
    content_type = _content_type(path)
    if content_type == PDF:
        engine, total = extract_pdf_pages(path, pdf_engine, plan, emit)
        return content_type, engine, total
    if content_type == HTML:
        engine, texts = "html", [read_html(path.read_bytes())]
    elif content_type == TEXT:
        # A form feed is the page break of plain text (printed dockets, converter output).
        engine, texts = "text", decode_text(path.read_bytes()).split("\f")
    else:
        engine, texts = office.read_office(path, content_type, timeout_seconds=timeout_seconds)
    for number, raw in enumerate(texts, 1):
        if number in plan.skip:
            continue
        text = normalize_text(raw)
        source = PageSource.TEXT if text else PageSource.BLANK
        emit(PageDone(PageResult(number, text, source), len(texts)))
    return content_type, engine, len(texts)


def extract_file(
    path: Path,
    *,
    pdf_engine: str = "pypdf",
    plan: PagePlan | None = None,
    timeout_seconds: float = 120.0,
    emit: Emit | None = None,
) -> ExtractedDocument:
    """The whole document at `path`, in this process (tests, benchmarks); `emit` sees every
    page event. Raises as stream_file, and the failed pages' error when every page failed."""
    results: dict[int, PageResult] = {}

    def collect(event: Event) -> None:
        if isinstance(event, PageDone):
            results[event.result.number] = event.result
        if emit is not None:
            emit(event)

    content_type, engine, total = stream_file(
        path,
        pdf_engine=pdf_engine,
        plan=plan or PagePlan(),
        timeout_seconds=timeout_seconds,
        emit=collect,
    )
    return assemble(content_type, engine, results, total)
