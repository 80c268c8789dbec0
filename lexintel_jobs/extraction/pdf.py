"""PDF text, page by page, with pypdf (the default) or pypdfium2 behind the same function.

A page whose extraction raises is kept as "" and the document goes on: one broken content
stream should not cost a lawyer the other 300 pages. When every page fails the document is
PDF_CORRUPT. Pages without a text layer (scans) give "" too; there is no OCR.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PdfReadWarning

from lexintel_core.errors import ErrorCode, PermanentError
from lexintel_jobs.extraction.model import Progress

try:  # the optional `pdfium` extra
    import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
    import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - the extra is installed wherever tests run
    pdfium = None

# pypdf logs every font it cannot fully decode and every repaired xref at WARNING; for us
# that is noise per page, and the outcome shows in the text (or in our error) anyway.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class _PypdfCannotDecrypt(Exception):
    """pypdf lacks what this encryption needs (AES without the `cryptography` package)."""


def encrypted() -> PermanentError:
    return PermanentError(
        "the PDF is password-protected; upload a copy without a password",
        code=ErrorCode.PDF_ENCRYPTED,
    )


def corrupt(detail: str) -> PermanentError:
    return PermanentError(
        f"the PDF is damaged and cannot be read ({detail})", code=ErrorCode.PDF_CORRUPT
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


def _read_pages(count: int, read: Callable[[int], str], progress: Progress | None) -> list[str]:
    """`read(index)` for every page, a failing page kept as ""; PDF_CORRUPT if all fail."""
    texts: list[str] = []
    failures, last = 0, None
    for index in range(count):
        try:
            text = read(index)
        except MemoryError:
            raise
        except Exception as error:
            text, failures, last = "", failures + 1, error
        texts.append(text)
        if progress is not None:
            progress(index + 1, count)
    if texts and failures == len(texts):
        raise corrupt(f"no page could be read; last error {_describe(last or Exception())}")
    return texts


def _open_pypdf(path: Path) -> PdfReader:
    try:
        reader = PdfReader(path)  # tries the empty user password by itself
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise encrypted()
        len(reader.pages)  # a broken page tree shows here, not later
    except (DependencyError, NotImplementedError) as error:
        raise _PypdfCannotDecrypt(str(error)) from error
    except (PermanentError, MemoryError):
        raise
    except Exception as error:
        raise corrupt(_describe(error)) from error
    return reader


def _pypdf_pages(path: Path, progress: Progress | None) -> list[str]:
    with warnings.catch_warnings():
        # strict=False readers warn about what they repair; repairs are what we want.
        warnings.simplefilter("ignore", PdfReadWarning)
        reader = _open_pypdf(path)
        return _read_pages(
            len(reader.pages), lambda index: reader.pages[index].extract_text(), progress
        )


def _pdfium_pages(path: Path, progress: Progress | None) -> list[str]:
    if pdfium is None:  # pragma: no cover
        raise RuntimeError("pypdfium2 is not installed (the `pdfium` extra)")
    try:
        document = pdfium.PdfDocument(path)  # tries the empty user password by itself
    except pdfium.PdfiumError as error:
        if error.err_code == pdfium_raw.FPDF_ERR_PASSWORD:
            raise encrypted() from error
        raise corrupt(_describe(error)) from error

    def read(index: int) -> str:
        page = document[index]
        try:
            textpage = page.get_textpage()
            try:
                return str(textpage.get_text_range())
            finally:
                textpage.close()
        finally:
            page.close()

    try:
        return _read_pages(len(document), read, progress)
    finally:
        document.close()


def extract_pdf_pages(path: Path, engine: str, progress: Progress | None) -> tuple[str, list[str]]:
    """(engine used, text of each page). pypdf hands over to pypdfium2 when it cannot decrypt
    a PDF whose user password is empty (AES needs the `cryptography` package)."""
    if engine == "pypdfium2":
        return engine, _pdfium_pages(path, progress)
    try:
        return engine, _pypdf_pages(path, progress)
    except _PypdfCannotDecrypt as error:
        if pdfium is None:  # pragma: no cover
            raise PermanentError(
                f"the PDF's encryption cannot be read here ({error})",
                code=ErrorCode.PDF_ENCRYPTED,
            ) from error
        return "pypdfium2", _pdfium_pages(path, progress)
