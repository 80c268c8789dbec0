"""Page by page: OCR of scanned and mixed pages, text coverage, and hostile pages that cost one
page, not the document (the Extractor and its child processes; no database)."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import LETTER  # type: ignore[import-untyped]
from reportlab.lib.utils import ImageReader  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from lexintel_core.coverage import BODY_TEXT_CHARS
from lexintel_core.errors import FailureCode, PermanentError
from lexintel_jobs.extraction import Extractor, OcrOptions
from tests.corpus import corpus_path
from tests.jobs.conftest import make_pdf
from tests.tools import require_binary

BODY = [
    "The Court has considered the motion of the defendant Harrowgate Holdings",
    "to dismiss the amended complaint for lack of personal jurisdiction.",
    "For the reasons below the motion is GRANTED in part and DENIED in part.",
    "The plaintiff shall file a second amended complaint within thirty days.",
]
STAMP = "Case 2:19-cv-01234 Document 42 Filed 03/04/20 Page 1 of 1"


def _scan(lines: list[str], stamp: str | None = None) -> bytes:
    """A one-page PDF whose body is a picture of `lines` (a scan), with `stamp` as its only
    text layer, like a court's filing stamp on a scanned filing."""
    pictured = pdfium.PdfDocument(make_pdf(["\n".join(lines)]))
    image = pictured[0].render(scale=200 / 72, grayscale=True).to_pil()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=LETTER)
    canvas.drawImage(ImageReader(image), 0, 0, *LETTER)
    if stamp:
        canvas.drawString(72, 770, stamp)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.fixture
async def extractor() -> AsyncIterator[Extractor]:
    extractor = Extractor(
        timeout_seconds=60,
        memory_limit_mb=1024,
        max_concurrency=2,
        pdf_engine="pypdfium2",
        ocr=OcrOptions(mode="auto", jobs=2),
    )
    yield extractor
    await extractor.aclose()


async def test_a_scanned_page_is_read_by_ocr_and_its_stamp_kept(
    extractor: Extractor, tmp_path: Path
) -> None:
    require_binary("tesseract")
    path = _write(tmp_path, "scan.pdf", _scan(BODY, STAMP))
    notes: list[str] = []

    async def on_page(done: int, total: int, note: str) -> None:
        notes.append(note)

    document = await extractor.extract(path, on_page)
    [page] = document.pages
    assert page.text.startswith(STAMP)  # the text layer's stamp kept, OCR text after it
    for word in ("Harrowgate", "jurisdiction", "GRANTED", "thirty"):
        assert word in page.text
    coverage = document.coverage
    assert (coverage.pages_ocr, coverage.pages_text_layer, coverage.pages_without_text) == (1, 0, 0)
    assert coverage.ocr_mean_confidence is not None
    assert coverage.ocr_mean_confidence > 80
    assert coverage.warning() is None
    assert notes == ["OCR page 1 of 1", "page 1 of 1"]


async def test_pages_with_body_text_are_not_ocrd(extractor: Extractor, tmp_path: Path) -> None:
    body = "\n".join(BODY * 3)
    assert len(body) >= BODY_TEXT_CHARS
    path = _write(tmp_path, "text.pdf", make_pdf([body, ""]))
    document = await extractor.extract(path)
    assert document.coverage.pages_text_layer == 1
    assert document.coverage.pages_blank == 1  # no text and no image: nothing to read
    assert document.coverage.pages_ocr == 0
    assert document.coverage.warning() is None


async def test_ocr_off_leaves_the_scan_unread_and_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "scan.pdf", _scan(BODY, STAMP))
    extractor = Extractor(
        timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1, pdf_engine="pypdfium2"
    )
    try:
        document = await extractor.extract(path)
    finally:
        await extractor.aclose()
    assert document.pages[0].text == STAMP
    assert document.coverage.pages_without_text == 1
    assert "1 of 1 pages has no text" in (document.coverage.warning() or "")


async def test_force_replaces_the_text_layer_with_ocr(tmp_path: Path) -> None:
    require_binary("tesseract")
    path = _write(tmp_path, "text.pdf", make_pdf(["\n".join(BODY)]))
    extractor = Extractor(
        timeout_seconds=60,
        memory_limit_mb=1024,
        max_concurrency=1,
        pdf_engine="pypdfium2",
        ocr=OcrOptions(mode="force"),
    )
    try:
        document = await extractor.extract(path)
    finally:
        await extractor.aclose()
    assert document.coverage.pages_ocr == 1
    assert "Harrowgate Holdings" in document.pages[0].text
    assert document.pages[0].text.count("Harrowgate") == 1  # replaced, not added


async def test_without_tesseract_a_scan_fails_ocr_unavailable(
    extractor: Extractor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "scan.pdf", _scan(BODY, STAMP))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the child starts with this PATH
    with pytest.raises(PermanentError) as raised:
        await extractor.extract(path)
    assert raised.value.code is FailureCode.OCR_UNAVAILABLE
    assert "tesseract-ocr" in raised.value.message


@pytest.mark.parametrize("engine", ["pypdfium2", "pypdf"])
async def test_a_page_count_lie_costs_nothing(engine: str) -> None:
    path = corpus_path("regressions", "page-count-lie.pdf")
    extractor = Extractor(
        timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1, pdf_engine=engine
    )
    started = time.monotonic()
    try:
        document = await extractor.extract(path)
    finally:
        await extractor.aclose()
    assert time.monotonic() - started < 10
    assert len(document.pages) == 1
    assert "Zanzibarco" in document.pages[0].text


@pytest.mark.parametrize("engine", ["pypdfium2", "pypdf"])
async def test_a_bomb_page_costs_that_page_and_is_reported_as_too_large(engine: str) -> None:
    # pdfium aborts on page 2 (the child dies); pypdf stops at its decompression limit.
    path = corpus_path("regressions", "flate-bomb-page2.pdf")
    extractor = Extractor(
        timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1, pdf_engine=engine
    )
    try:
        document = await extractor.extract(path)
        after = await extractor.extract(path)  # the extractor goes on with fresh children
    finally:
        await extractor.aclose()
    assert "Pemberwick" in document.pages[0].text
    assert document.pages[1].text == ""
    coverage = document.coverage
    assert [(page.page, page.code) for page in coverage.failed_pages] == [(2, "too_large")]
    assert coverage.pages_without_text == 1
    assert "page 2" in (coverage.warning() or "")
    assert after.coverage == coverage


@pytest.mark.parametrize("engine", ["pypdfium2", "pypdf"])
async def test_a_document_whose_every_page_fails_fails_with_their_code(
    engine: str, tmp_path: Path
) -> None:
    bomb = PdfReader(corpus_path("regressions", "flate-bomb-page2.pdf"))
    writer = PdfWriter()
    writer.add_page(bomb.pages[1])
    writer.add_page(bomb.pages[1])
    path = tmp_path / "bombs.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    extractor = Extractor(
        timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1, pdf_engine=engine
    )
    try:
        with pytest.raises(PermanentError) as raised:
            await extractor.extract(path)
    finally:
        await extractor.aclose()
    assert raised.value.code is FailureCode.TOO_LARGE
