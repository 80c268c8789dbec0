"""Text coverage: where each page's text came from, stored per document (documents.text_coverage)
and shown to clients, so that a READY document with unread pages says so."""

from __future__ import annotations

from pydantic import BaseModel, Field

# Fewer characters than this in a page's text layer is no body text: scanned pages often carry
# only the court's filing stamp ("Case 2:13-cr-00106 Document 311 Filed 12/13/18 Page 1 of 7").
BODY_TEXT_CHARS = 200


class FailedPage(BaseModel):
    """A page that could not be read: its 1-based number, a stable error code (too_large,
    timeout, pdf_corrupt...) and a human message."""

    page: int = Field(ge=1)
    code: str
    message: str


class TextCoverage(BaseModel):
    """How a document's pages were read. Every page counts in exactly one of the four
    counts `pages_text_layer`, `pages_ocr`, `pages_blank`, `pages_without_text`."""

    pages_total: int = Field(ge=0)
    pages_text_layer: int = Field(default=0, ge=0)  # text from the PDF text layer / the file
    pages_ocr: int = Field(default=0, ge=0)  # text added by OCR (a text layer's stamp kept)
    pages_blank: int = Field(
        default=0, ge=0
    )  # no text and nothing to read (no image, or OCR found none)
    # Pages with images but no body text that were not OCR'd (OCR off), and failed pages.
    pages_without_text: int = Field(default=0, ge=0)
    ocr_mean_confidence: float | None = None  # Tesseract's word confidence, 0-100, over OCR'd pages
    failed_pages: list[FailedPage] = Field(default_factory=list)

    def warning(self) -> str | None:
        """A sentence for people when some pages were not read, else None."""
        if not self.pages_without_text:
            return None
        parts = []
        failed = len(self.failed_pages)
        if failed:
            listed = ", ".join(str(page.page) for page in self.failed_pages[:10])
            more = "..." if failed > 10 else ""
            parts.append(f"{failed} could not be read (page {listed}{more})")
        unread = self.pages_without_text - failed
        if unread:
            parts.append(f"{unread} are images that were not OCR'd")
        verb = "has" if self.pages_without_text == 1 else "have"
        return (
            f"{self.pages_without_text} of {self.pages_total} pages {verb} no text: "
            + "; ".join(parts)
        )
