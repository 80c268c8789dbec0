"""What extraction returns, and the text normalisation every format goes through."""

from __future__ import annotations

from lexintel_core.filetypes import DOCX, HTML, PDF, TEXT
from lexintel_jobs.extraction.normalize import normalize_text
from lexintel_jobs.extraction.pages import ExtractedDocument

__all__ = ["DOCX", "HTML", "PDF", "PDF_ENGINES", "TEXT", "ExtractedDocument", "normalize_text"]

PDF_ENGINES = ("pypdf", "pypdfium2")
