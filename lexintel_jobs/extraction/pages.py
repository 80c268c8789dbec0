"""What the extraction child reports page by page, and the document built from those reports.

The child reports every page on its own, so that a page that kills the child (a decompression
bomb, a parser crash, a hang) costs that page: the parent keeps the pages already reported and
a fresh child goes on after the bad one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from lexintel_core.chunking import PageText
from lexintel_core.coverage import FailedPage, TextCoverage
from lexintel_core.errors import FailureCode, PermanentError


class PageSource(StrEnum):
    TEXT = "text"  # the text layer (or the file's own text) has the page's text
    OCR = "ocr"  # OCR added the text (to a text layer's stamp, if any)
    BLANK = "blank"  # nothing to read: no text and no image, or OCR found no words
    NO_TEXT = "no_text"  # images without body text, not OCR'd (OCR off)
    FAILED = "failed"  # the page could not be read


@dataclass(frozen=True)
class PageResult:
    number: int  # 1-based
    text: str  # normalized
    source: PageSource
    ocr_confidence: float | None = None
    error_code: str | None = None  # FAILED pages: a stable code (FailureCode value) and why
    error: str | None = None

    @classmethod
    def failed(cls, number: int, code: FailureCode, message: str) -> PageResult:
        return cls(number, "", PageSource.FAILED, error_code=code.value, error=message)


@dataclass(frozen=True)
class Reading:
    """The child starts on page `number` (of `total`): a crash from here on is this page's."""

    number: int
    total: int


@dataclass(frozen=True)
class OcrStarted:
    number: int
    total: int


@dataclass(frozen=True)
class PageDone:
    result: PageResult
    total: int


Event = Reading | OcrStarted | PageDone
Emit = Callable[[Event], None]


@dataclass(frozen=True)
class ExtractedDocument:
    content_type: str  # detected from the bytes: PDF, TEXT, HTML, DOCX, DOC, WPD, RTF, ODT
    pages: list[PageText]  # numbered 1..n; formats without pages give one page
    engine: str  # "pypdf", "pypdfium2", "text", "html", "docx", "antiword", ...
    coverage: TextCoverage


def coverage_of(results: Iterable[PageResult], total: int) -> TextCoverage:
    counts = dict.fromkeys(PageSource, 0)
    confidences: list[float] = []
    failed: list[FailedPage] = []
    for result in results:
        counts[result.source] += 1
        if result.ocr_confidence is not None:
            confidences.append(result.ocr_confidence)
        if result.source is PageSource.FAILED:
            failed.append(
                FailedPage(
                    page=result.number,
                    code=result.error_code or FailureCode.PDF_CORRUPT.value,
                    message=result.error or "",
                )
            )
    return TextCoverage(
        pages_total=total,
        pages_text_layer=counts[PageSource.TEXT],
        pages_ocr=counts[PageSource.OCR],
        pages_blank=counts[PageSource.BLANK],
        pages_without_text=counts[PageSource.NO_TEXT] + counts[PageSource.FAILED],
        ocr_mean_confidence=round(sum(confidences) / len(confidences), 1) if confidences else None,
        failed_pages=sorted(failed, key=lambda page: page.page),
    )


def assemble(
    content_type: str, engine: str, results: dict[int, PageResult], total: int
) -> ExtractedDocument:
    """The document from its page results (a page never reported counts as failed). Raises
    the failed pages' PermanentError when every page failed: their common code, else
    PDF_CORRUPT."""
    for number in range(1, total + 1):
        if number not in results:
            results[number] = PageResult.failed(
                number, FailureCode.PDF_CORRUPT, "the page was never read"
            )
    ordered = [results[number] for number in range(1, total + 1)]
    if ordered and all(result.source is PageSource.FAILED for result in ordered):
        codes = {result.error_code or FailureCode.PDF_CORRUPT for result in ordered}
        code = FailureCode(codes.pop()) if len(codes) == 1 else FailureCode.PDF_CORRUPT
        last = ordered[-1]
        raise PermanentError(f"no page could be read (page {last.number}: {last.error})", code=code)
    return ExtractedDocument(
        content_type=content_type,
        pages=[PageText(result.number, result.text) for result in ordered],
        engine=engine,
        coverage=coverage_of(ordered, total),
    )
