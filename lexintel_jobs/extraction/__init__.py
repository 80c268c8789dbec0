"""Document text extraction for the worker: PDF (pypdf, or pypdfium2), Word (.docx), HTML and
plain text, detected from the bytes, parsed in capped child processes.

    extractor = Extractor(timeout_seconds=120, memory_limit_mb=1024, max_concurrency=4)
    document = await extractor.extract(path, on_page)   # ExtractedDocument
    await extractor.aclose()

Failures are PermanentError with a stable code: UNSUPPORTED (not a format we read, a ZIP
that is not a Word document, binary garbage, a damaged .docx), PDF_ENCRYPTED (needs a
password), PDF_CORRUPT (unparsable PDF, or the parser crashed), TOO_LARGE (memory cap, zip
bomb), TIMEOUT. RetryableError when the worker shuts down mid-document or reading fails.
"""

from lexintel_core.filetypes import HEAD_SIZE, detect_content_type
from lexintel_jobs.extraction.extract import extract_file
from lexintel_jobs.extraction.extractor import Extractor
from lexintel_jobs.extraction.model import DOCX, HTML, PDF, PDF_ENGINES, TEXT, ExtractedDocument

__all__ = [
    "DOCX",
    "HEAD_SIZE",
    "HTML",
    "PDF",
    "PDF_ENGINES",
    "TEXT",
    "ExtractedDocument",
    "Extractor",
    "detect_content_type",
    "extract_file",
]
