"""Document text extraction for the worker: PDF (pypdf, or pypdfium2) with OCR of scanned
pages (Tesseract), Word (.docx, .doc), WordPerfect, RTF, ODT, HTML and plain text, detected
from the bytes, parsed in capped child processes, page by page.

    extractor = Extractor(timeout_seconds=120, memory_limit_mb=1024, max_concurrency=4,
                          ocr=OcrOptions(mode="auto"))
    document = await extractor.extract(path, on_page)   # ExtractedDocument, with coverage
    await extractor.aclose()

Failures are PermanentError with a stable code: UNSUPPORTED (not a format we read, a ZIP
that is not a Word document, binary garbage, a damaged file), PDF_ENCRYPTED (needs a
password), PDF_CORRUPT (unparsable PDF, or every page crashed the parser), TOO_LARGE (memory
cap, zip bomb), TIMEOUT, OCR_UNAVAILABLE (pages need OCR and Tesseract is missing),
CONVERTER_UNAVAILABLE (antiword / wpd2text missing). One bad PDF page is a failed page in the
document's coverage, not a failed document. RetryableError when the worker shuts down
mid-document or reading fails.
"""

from lexintel_core.filetypes import HEAD_SIZE, detect_content_type
from lexintel_jobs.extraction.extract import extract_file
from lexintel_jobs.extraction.extractor import Extractor
from lexintel_jobs.extraction.model import DOCX, HTML, PDF, PDF_ENGINES, TEXT, ExtractedDocument
from lexintel_jobs.extraction.ocr import OcrOptions, ocr_problem, tesseract_version
from lexintel_jobs.extraction.pdf import PagePlan

__all__ = [
    "DOCX",
    "HEAD_SIZE",
    "HTML",
    "PDF",
    "PDF_ENGINES",
    "TEXT",
    "ExtractedDocument",
    "Extractor",
    "OcrOptions",
    "PagePlan",
    "detect_content_type",
    "extract_file",
    "ocr_problem",
    "tesseract_version",
]
