"""Every PDF of the shared sample corpus through the whole pipeline on a real worker.

Needs the shared corpus (tests/corpus.py): skipped without it, failed in CI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from arq.worker import Worker

from lexintel_core.db import SessionFactory
from lexintel_core.errors import FailureCode
from lexintel_core.status import ProcessingStatus
from tests.jobs.conftest import PDF_SAMPLES, Uploader, corpus_entries, load, pdf_sample

RunWorker = Callable[..., Awaitable[Worker]]
STABLE_CODES = {FailureCode.PDF_ENCRYPTED, FailureCode.PDF_CORRUPT, FailureCode.NO_TEXT}


def test_the_sample_list_names_every_pdf_of_files_json() -> None:
    # PDF_SAMPLES parametrizes tests without reading the corpus; it must not fall behind it.
    assert tuple(entry["path"] for entry in corpus_entries()) == PDF_SAMPLES
    assert all(pdf_sample(path).is_file() for path in PDF_SAMPLES)


async def test_every_corpus_pdf_ends_ready_or_failed_with_a_stable_code(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory
) -> None:
    uploaded = {}
    for entry in corpus_entries():
        path = pdf_sample(entry["path"])
        uploaded[entry["path"].split("/")[0]] = (
            await uploader.upload(path.read_bytes(), path.name),
            entry,
        )
    worker = await run_worker()
    assert worker.jobs_failed == 0

    outcomes = {}
    for name, (document, entry) in uploaded.items():
        stored, chunks = await load(sessions, document.id)
        outcomes[name] = (stored.status, stored.error_code)
        assert stored.status in {ProcessingStatus.READY, ProcessingStatus.FAILED}, (
            name,
            stored.status,
        )
        if stored.status is ProcessingStatus.FAILED:
            assert stored.error_code in STABLE_CODES, (name, stored.error_code)
            assert stored.error_message
            assert chunks == []
        else:
            assert stored.page_count == entry["pages"], name
            assert chunks, name
            assert all(1 <= c.page_start <= c.page_end <= entry["pages"] for c in chunks)

    encrypted, _ = await load(sessions, uploaded["005-libreoffice-writer-password"][0].id)
    assert encrypted.error_code == FailureCode.PDF_ENCRYPTED
    assert encrypted.attempts == 1  # not retried
    assert "password" in (encrypted.error_message or "")
    # Image-only documents: no text layer is a clear failure, not a crash or an empty READY.
    assert outcomes["007-imagemagick-images"] == (ProcessingStatus.FAILED, FailureCode.NO_TEXT)

    _, columns = await load(sessions, uploaded["026-latex-multicolumn"][0].id)
    for page, word in [(1, "Abstract"), (2, "hymenaeos"), (3, "Copenhagen")]:
        holding = [c for c in columns if word in c.text]
        assert holding, word
        assert all(c.page_start <= page <= c.page_end for c in holding), word
    _, four = await load(sessions, uploaded["004-pdflatex-4-pages"][0].id)
    assert {c.page_start for c in four} | {c.page_end for c in four} == {1, 2, 3, 4}
