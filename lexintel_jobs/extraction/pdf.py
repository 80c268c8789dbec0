"""PDF text, page by page, with pypdf (the default) or pypdfium2, and OCR of scanned pages.

Each page is reported on its own (pages.py). A page whose text layer raises is a failed page
and the document goes on: one broken content stream should not cost a lawyer the other 300
pages. A page whose text layer carries no body text (empty, or only a filing stamp) but has
images is OCR'd with Tesseract (ocr.py): its stamp is kept and the OCR text added. Pages
are OCR'd in up to `OcrOptions.jobs` Tesseract processes at once while the next pages are
read; with the worker's `OcrSlots`, a second and later process each need a free slot.

The page count is not trusted blindly: pdfium believes a page tree's /Count, so a file that
claims 1,000,000 pages would make it try them all. pypdf walks the tree; when it finds fewer
pages and pdfium cannot load the first page beyond them, pypdf's count holds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, LimitReachedError, PdfReadWarning

from lexintel_core.coverage import BODY_TEXT_CHARS
from lexintel_core.errors import FailureCode, PermanentError
from lexintel_jobs.extraction import ocr
from lexintel_jobs.extraction.model import normalize_text
from lexintel_jobs.extraction.ocr import OcrSlots
from lexintel_jobs.extraction.pages import (
    Emit,
    OcrStarted,
    PageDone,
    PageResult,
    PageSource,
    Reading,
)

try:  # the optional `pdfium` extra
    import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
    import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - the extra is installed wherever tests run
    pdfium = None

# pypdf logs every font it cannot fully decode and every repaired xref at WARNING; for us
# that is noise per page, and the outcome shows in the text (or in our error) anyway.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PagePlan:
    """What the parent asks of this run over a PDF: pages already reported (`skip`), pages to
    read with pypdf because they crashed pdfium (`fallback`: page -> (code, message) of the
    crash, used if pypdf finds no body text either), and OCR (`ocr_slots`: the worker's
    shared Tesseract processes; None: only `ocr.jobs` bounds them)."""

    ocr: ocr.OcrOptions = field(default_factory=ocr.OcrOptions)
    skip: frozenset[int] = frozenset()
    fallback: dict[int, tuple[str, str]] = field(default_factory=dict)
    ocr_slots: OcrSlots | None = None


class _PypdfCannotDecrypt(Exception):
    """pypdf lacks what this encryption needs (AES without the `cryptography` package)."""


def encrypted() -> PermanentError:
    return PermanentError(
        "the PDF is password-protected; upload a copy without a password",
        code=FailureCode.PDF_ENCRYPTED,
    )


def corrupt(detail: str) -> PermanentError:
    return PermanentError(
        f"the PDF is damaged and cannot be read ({detail})", code=FailureCode.PDF_CORRUPT
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


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


def _open_pdfium(path: Path) -> object:
    if pdfium is None:  # pragma: no cover
        raise RuntimeError("pypdfium2 is not installed (the `pdfium` extra)")
    try:
        return pdfium.PdfDocument(path)  # tries the empty user password by itself
    except pdfium.PdfiumError as error:
        if error.err_code == pdfium_raw.FPDF_ERR_PASSWORD:
            raise encrypted() from error
        raise corrupt(_describe(error)) from error


@contextmanager
def _pdfium_page(document: object, index: int) -> Iterator[object]:
    page = document[index]  # type: ignore[index]
    try:
        yield page
    finally:
        page.close()


def _pdfium_text(page: object) -> str:
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        return str(textpage.get_text_range())
    finally:
        textpage.close()


def _has_images(page: object) -> bool:
    images = page.get_objects(filter=(pdfium_raw.FPDF_PAGEOBJ_IMAGE,), max_depth=3)  # type: ignore[attr-defined]
    return next(iter(images), None) is not None


def _loads(document: object, index: int) -> bool:
    try:
        with _pdfium_page(document, index):
            return True
    except Exception:
        return False


def _page_count(document: object, reader: PdfReader | None) -> int:
    claimed = len(document)  # type: ignore[arg-type]
    if reader is None or claimed <= 1:
        return claimed
    try:
        walked = len(reader.pages)
    except Exception:
        return claimed
    if 0 < walked < claimed and not _loads(document, walked):
        return walked
    return claimed


def _failure_code(error: BaseException) -> FailureCode:
    if isinstance(error, MemoryError | LimitReachedError):
        return FailureCode.TOO_LARGE
    return FailureCode.PDF_CORRUPT


class _Ocr:
    """OCR of rendered pages in a pool of threads, each waiting on one Tesseract process;
    at most `jobs` pages in flight (their images held in memory), the second and later of
    them only while one of the worker's `slots` is free. Finished pages are reported as soon
    as the reading loop comes back here, in the order they finish (the parent puts them
    back in page order for progress)."""

    def __init__(
        self, options: ocr.OcrOptions, slots: OcrSlots | None, emit: Emit, total: int
    ) -> None:
        self._options = options
        self._slots = slots
        self._emit = emit
        self._total = total
        self._pool: ThreadPoolExecutor | None = None
        # A page in flight: its number, its text layer, the slot it holds (None: none).
        self._pending: dict[Future[ocr.OcrText], tuple[int, str, int | None]] = {}

    def submit(self, number: int, kept: str, image: bytes) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._options.jobs, thread_name_prefix="ocr")
        slot = self._wait_for_turn()
        self._emit(OcrStarted(number, self._total))
        future = self._pool.submit(ocr.recognize, image, self._options)
        self._pending[future] = (number, kept, slot)

    def _wait_for_turn(self) -> int | None:
        """Wait until one more page may start; the slot it takes, if any. A document's only
        page in flight never waits for a slot: every document goes on however busy the
        worker is, and only the extra processes are shared."""
        while True:
            if len(self._pending) < self._options.jobs:
                if self._slots is None:
                    return None
                slot = self._slots.take()
                if slot is not None or not self._pending:
                    return slot
            self._report(FIRST_COMPLETED)

    def report_finished(self) -> None:
        """Report the pages whose OCR is done, without waiting for the others."""
        if any(future.done() for future in self._pending):
            self._report(FIRST_COMPLETED)

    def close(self) -> None:
        try:
            while self._pending:
                self._report(ALL_COMPLETED)
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)

    def _report(self, until: str) -> None:
        done, _ = wait(self._pending, return_when=until)
        for future in done:
            number, kept, slot = self._pending.pop(future)
            if slot is not None:
                OcrSlots.release(slot)
            self._emit(PageDone(self._result(number, kept, future), self._total))

    def _result(self, number: int, kept: str, future: Future[ocr.OcrText]) -> PageResult:
        try:
            found = future.result()
        except PermanentError as error:
            return PageResult(
                number, kept, PageSource.FAILED, error_code=error.code.value, error=error.message
            )
        text = normalize_text(found.text)
        if not text:  # nothing to read on the page (blank, redacted), its stamp kept
            return PageResult(number, kept, PageSource.BLANK, ocr_confidence=found.confidence)
        if self._options.mode != "force" and kept:
            text = f"{kept}\n\n{text}"
        return PageResult(number, text, PageSource.OCR, ocr_confidence=found.confidence)


def _read_pages(
    total: int,
    read_text: Callable[[int], str],
    pdfium_document: object | None,
    plan: PagePlan,
    emit: Emit,
) -> None:
    options = plan.ocr
    ocr_pool = _Ocr(options, plan.ocr_slots, emit, total)
    try:
        for number in range(1, total + 1):
            if number in plan.skip:
                continue
            emit(Reading(number, total))
            result = _read_page(number, read_text, pdfium_document, plan, ocr_pool)
            if result is not None:
                emit(PageDone(result, total))
            ocr_pool.report_finished()
    finally:
        ocr_pool.close()


def _read_page(
    number: int,
    read_text: Callable[[int], str],
    pdfium_document: object | None,
    plan: PagePlan,
    ocr_pool: _Ocr,
) -> PageResult | None:
    """The page's result, or None when it went to OCR (reported when the OCR is done)."""
    try:
        text = normalize_text(read_text(number - 1))
    except Exception as error:  # MemoryError included: the page, not the document
        return PageResult.failed(number, _failure_code(error), _describe(error))
    crash = plan.fallback.get(number)
    if crash is not None:  # pdfium died on this page; pypdf read it instead, without OCR
        if len(text) >= BODY_TEXT_CHARS:
            return PageResult(number, text, PageSource.TEXT)
        code, message = crash
        return PageResult(number, text, PageSource.FAILED, error_code=code, error=message)
    mode = plan.ocr.mode
    if len(text) >= BODY_TEXT_CHARS and mode != "force":
        return PageResult(number, text, PageSource.TEXT)
    if pdfium_document is None:  # no pdfium: no image check, no rendering
        return PageResult(number, text, PageSource.TEXT if text else PageSource.BLANK)
    try:
        with _pdfium_page(pdfium_document, number - 1) as page:
            if mode != "force" and not _has_images(page):
                return PageResult(number, text, PageSource.TEXT if text else PageSource.BLANK)
            if mode == "off":
                return PageResult(number, text, PageSource.NO_TEXT)
            problem = ocr.ocr_problem(plan.ocr.languages)
            if problem is not None:
                raise ocr.unavailable(problem)
            image = ocr.render_page(page, plan.ocr.dpi)
    except PermanentError:
        raise
    except Exception as error:
        return PageResult(
            number,
            text,
            PageSource.FAILED,
            error_code=_failure_code(error).value,
            error=_describe(error),
        )
    ocr_pool.submit(number, text, image)
    return None


def extract_pdf_pages(path: Path, engine: str, plan: PagePlan, emit: Emit) -> tuple[str, int]:
    """Report every page of the PDF at `path` through `emit`; (the engine used, the page
    count). pypdf hands
    over to pypdfium2 when it cannot decrypt a PDF whose user password is empty (AES needs
    the `cryptography` package). Raises PermanentError PDF_ENCRYPTED / PDF_CORRUPT when the
    document cannot be opened, OCR_UNAVAILABLE when a page needs OCR that is not installed."""
    with warnings.catch_warnings(), ExitStack() as stack:
        # strict=False readers warn about what they repair; repairs are what we want.
        warnings.simplefilter("ignore", PdfReadWarning)
        reader: PdfReader | None = None
        if engine == "pypdf":
            try:
                reader = _open_pypdf(path)
            except _PypdfCannotDecrypt as error:
                if pdfium is None:  # pragma: no cover
                    raise PermanentError(
                        f"the PDF's encryption cannot be read here ({error})",
                        code=FailureCode.PDF_ENCRYPTED,
                    ) from error
                engine = "pypdfium2"
        document: object | None = None
        if pdfium is not None:
            try:
                document = _open_pdfium(path)
            except PermanentError:
                if engine == "pypdfium2":
                    raise
            else:
                stack.callback(document.close)  # type: ignore[attr-defined]
        if engine == "pypdfium2":
            pypdf_reader = reader if reader is not None else _open_pypdf_quietly(path)
            total = _page_count(document, pypdf_reader)

            def read_text(index: int) -> str:
                if index + 1 in plan.fallback and pypdf_reader is not None:
                    return str(pypdf_reader.pages[index].extract_text())
                with _pdfium_page(document, index) as page:
                    return _pdfium_text(page)

        else:
            assert reader is not None
            pages = reader.pages
            total = len(pages)

            def read_text(index: int) -> str:
                return str(pages[index].extract_text())

        _read_pages(total, read_text, document, plan, emit)
    return engine, total


def _open_pypdf_quietly(path: Path) -> PdfReader | None:
    """pypdf's reader for cross-checks and fallbacks, or None where pypdf cannot open it."""
    try:
        return _open_pypdf(path)
    except (PermanentError, _PypdfCannotDecrypt, MemoryError):
        return None
