"""A document's scanned pages OCR'd in several Tesseract processes at once: the same text as one
at a time, progress in page order, a worker-wide bound on the processes, and a page that kills
its child or its Tesseract costing that page while the others are read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from pypdf import PdfReader, PdfWriter

from lexintel_jobs.extraction import ExtractedDocument, Extractor, OcrOptions
from lexintel_jobs.extraction.ocr import OcrSlots
from tests.corpus import corpus_path
from tests.jobs.test_pages import BODY, _scan
from tests.tools import require_binary

# 4 pages, each a scan whose only text layer is the court's filing stamp.
SCANNED_FILING = ("court-filings", "gov.uscourts.cacd.648946.2114.0.pdf")

Notes = list[tuple[int, str]]


def _extractor(jobs: int, max_ocr_processes: int | None = None) -> Extractor:
    return Extractor(
        timeout_seconds=300,
        memory_limit_mb=1024,
        max_concurrency=2,
        pdf_engine="pypdfium2",
        ocr=OcrOptions(mode="auto", jobs=jobs),
        max_ocr_processes=max_ocr_processes or jobs,
    )


async def _extract(path: Path, *, jobs: int) -> tuple[ExtractedDocument, Notes]:
    """The document at `path` with `jobs` OCR processes, and the (done, note) pairs of its
    progress."""
    extractor = _extractor(jobs)
    notes: Notes = []

    async def on_page(done: int, total: int, note: str) -> None:
        notes.append((done, note))

    try:
        return await extractor.extract(path, on_page), notes
    finally:
        await extractor.aclose()


def _pages_in_flight_together(notes: Notes, total: int) -> bool:
    """Whether some page's OCR started before an earlier page was done. Pages are read in
    order and a page with text is done at once, so an earlier page not yet done then was in
    OCR too: two Tesseract processes ran at the same time."""
    said = [note for _, note in notes]
    return any(
        said.index(f"OCR page {later} of {total}") < said.index(f"page {earlier} of {total}")
        for later in range(2, total + 1)
        for earlier in range(1, later)
        if f"OCR page {later} of {total}" in said
    )


def _merge(tmp_path: Path, name: str, parts: list[PdfReader]) -> Path:
    writer = PdfWriter()
    for part in parts:
        for page in part.pages:
            writer.add_page(page)
    path = tmp_path / name
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def _pdf(content: bytes, tmp_path: Path, name: str) -> PdfReader:
    path = tmp_path / name
    path.write_bytes(content)
    return PdfReader(path)


def _our_tesseracts() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.name() == "tesseract":
                found.append(process)
        except psutil.NoSuchProcess:  # pragma: no cover - ended while we looked
            continue
    return found


async def test_a_scanned_filing_is_ocrd_in_parallel_with_the_text_of_one_at_a_time() -> None:
    require_binary("tesseract")
    path = corpus_path(*SCANNED_FILING)
    texts = {}
    notes = {}
    for jobs in (1, 2):
        document, notes[jobs] = await _extract(path, jobs=jobs)
        assert document.coverage.pages_ocr == 4
        texts[jobs] = document.pages
        page_notes = [entry for entry in notes[jobs] if not entry[1].startswith("OCR")]
        assert page_notes == [(n, f"page {n} of 4") for n in (1, 2, 3, 4)]
    assert texts[2] == texts[1]  # the same text, on the same page numbers
    assert not _pages_in_flight_together(notes[1], 4)
    assert _pages_in_flight_together(notes[2], 4)


async def test_progress_stays_in_page_order_when_a_later_page_finishes_first(
    tmp_path: Path,
) -> None:
    require_binary("tesseract")
    dense = _pdf(_scan(BODY * 6), tmp_path, "dense.pdf")  # OCR takes seconds
    short = _pdf(_scan(["Exhibit"]), tmp_path, "short.pdf")  # a fraction of that
    path = _merge(tmp_path, "scan.pdf", [dense, short])
    document, notes = await _extract(path, jobs=2)
    assert "Harrowgate" in document.pages[0].text
    assert "Exhibit" in document.pages[1].text
    assert notes == [
        (0, "OCR page 1 of 2"),
        (0, "OCR page 2 of 2"),
        (1, "page 1 of 2"),
        (2, "page 2 of 2"),
    ]


async def test_a_page_that_kills_its_child_while_others_are_ocrd_costs_that_page(
    tmp_path: Path,
) -> None:
    require_binary("tesseract")
    # pdfium aborts on the bomb page: the child dies while pages 1 and 2 are in OCR.
    bomb = PdfWriter()
    bomb.add_page(PdfReader(corpus_path("regressions", "flate-bomb-page2.pdf")).pages[1])
    bomb_path = tmp_path / "bomb.pdf"
    with bomb_path.open("wb") as handle:
        bomb.write(handle)
    scan = _pdf(_scan(BODY), tmp_path, "scan.pdf")
    path = _merge(tmp_path, "filing.pdf", [scan, scan, PdfReader(bomb_path)])
    document, notes = await _extract(path, jobs=2)
    assert all("Harrowgate" in page.text for page in document.pages[:2])
    coverage = document.coverage
    assert coverage.pages_ocr == 2
    assert [(page.page, page.code) for page in coverage.failed_pages] == [(3, "too_large")]
    assert [note for note in notes if not note[1].startswith("OCR")] == [
        (1, "page 1 of 3"),
        (2, "page 2 of 3"),
        (3, "page 3 of 3"),
    ]


_KILLING_TESSERACT = """\
import os, signal, subprocess, sys
if sys.argv[1:2] == ["stdin"]:
    image = sys.stdin.buffer.read()
    if image.split(b"\\n")[1].startswith(b"{width} "):
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    done = subprocess.run(["{real}", *sys.argv[1:]], input=image, capture_output=True)
    sys.stdout.buffer.write(done.stdout)
    sys.exit(done.returncode)
os.execv("{real}", ["{real}", *sys.argv[1:]])
"""


async def test_a_killed_tesseract_costs_its_page_while_the_others_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = require_binary("tesseract")
    letter = _pdf(_scan(BODY), tmp_path, "letter.pdf")
    doomed = PdfWriter()
    doomed.add_page(letter.pages[0])
    doomed.pages[0].scale_by(0.5)  # a page of its own size, so the fake knows its image
    doomed_path = tmp_path / "doomed.pdf"
    with doomed_path.open("wb") as handle:
        doomed.write(handle)
    path = _merge(tmp_path, "filing.pdf", [letter, PdfReader(doomed_path), letter])
    width = round(float(PdfReader(doomed_path).pages[0].mediabox.width) * 200 / 72)
    fake = tmp_path / "bin" / "tesseract"
    fake.parent.mkdir()
    script = _KILLING_TESSERACT.replace("{real}", real).replace("{width}", str(width))
    fake.write_text(f"#!{sys.executable}\n{script}")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    document, notes = await _extract(path, jobs=2)
    assert "Harrowgate" in document.pages[0].text
    assert "Harrowgate" in document.pages[2].text
    coverage = document.coverage
    assert [(page.page, page.code) for page in coverage.failed_pages] == [(2, "too_large")]
    assert _pages_in_flight_together(notes, 3)  # page 2's Tesseract died beside another


class Cancelled(Exception):
    pass


async def test_cancelling_kills_every_tesseract_of_the_document() -> None:
    require_binary("tesseract")
    extractor = _extractor(2)
    running: list[psutil.Process] = []

    async def on_page(done: int, total: int, note: str) -> None:
        if note.startswith("OCR page 2"):
            running.extend(_our_tesseracts())
            raise Cancelled

    try:
        with pytest.raises(Cancelled):
            await extractor.extract(corpus_path(*SCANNED_FILING), on_page)
    finally:
        await extractor.aclose()
    assert running  # OCR was running when the document was cancelled
    for process in running:
        with contextlib.suppress(psutil.NoSuchProcess):  # gone, or only its exit status left
            assert process.status() == psutil.STATUS_ZOMBIE


def test_ocr_slots_are_shared_and_a_dead_holder_frees_its_slot(tmp_path: Path) -> None:
    slots = OcrSlots.create(tmp_path, 2)
    first, second = slots.take(), slots.take()
    assert first is not None
    assert second is not None
    assert slots.take() is None
    OcrSlots.release(first)
    again = slots.take()
    assert again is not None
    OcrSlots.release(again)
    OcrSlots.release(second)
    # Another process takes both slots and is killed holding them: the kernel drops its locks.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lexintel_jobs.extraction.ocr import OcrSlots; "
            f"s = OcrSlots({str(tmp_path)!r}); a, b = s.take(), s.take(); "
            "print(a is not None and b is not None, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        assert slots.take() is None
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert slots.take() is not None


async def test_documents_at_once_share_the_workers_ocr_processes() -> None:
    require_binary("tesseract")
    extractor = _extractor(2, max_ocr_processes=2)
    seen: list[int] = []

    async def on_page(done: int, total: int, note: str) -> None:
        seen.append(len(_our_tesseracts()))

    path = corpus_path(*SCANNED_FILING)
    try:
        documents = await asyncio.gather(*(extractor.extract(path, on_page) for _ in range(2)))
    finally:
        await extractor.aclose()
    assert all(document.coverage.pages_ocr == 4 for document in documents)
    # 2 slots, and a document's first Tesseract runs without one when none is free: at most
    # 3, where 2 documents x 2 processes would be 4.
    assert max(seen) <= 3
