"""Fixtures for worker tests: a real arq Worker over the real test PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from redis.asyncio import Redis
from reportlab.lib.pagesizes import LETTER  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]
from sqlalchemy import select

from lexintel_core import keys
from lexintel_core.blobs import create_blob_store
from lexintel_core.db import SessionFactory
from lexintel_core.documents import DocumentRepository
from lexintel_core.jobs import JobName, ProcessDocument, enqueue, json_dumps, json_loads
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.progress import ProgressEvent
from lexintel_core.settings import Settings
from lexintel_jobs.state import STATE_KEY, WorkerState, build_state
from lexintel_jobs.worker import on_shutdown, worker_options
from tests import factories
from tests.corpus import corpus_path

# The PDFs of the shared sample corpus (../shared/corpus/pdf-samples, see tests/corpus.py), by
# their path in files.json. Named here so that tests can be parametrized over them without
# reading the corpus at collection: each test reads it when it runs, and is skipped (failed in
# CI) on a clone without it. tests/jobs/test_corpus.py checks this list against files.json.
PDF_SAMPLES = (
    "001-trivial/minimal-document.pdf",
    "002-trivial-libre-office-writer/002-trivial-libre-office-writer.pdf",
    "003-pdflatex-image/pdflatex-image.pdf",
    "004-pdflatex-4-pages/pdflatex-4-pages.pdf",
    "005-libreoffice-writer-password/libreoffice-writer-password.pdf",
    "006-pdflatex-outline/pdflatex-outline.pdf",
    "007-imagemagick-images/imagemagick-ASCII85Decode.pdf",
    "007-imagemagick-images/imagemagick-images.pdf",
    "007-imagemagick-images/imagemagick-CCITTFaxDecode.pdf",
    "007-imagemagick-images/imagemagick-lzw.pdf",
    "008-reportlab-inline-image/inline-image.pdf",
    "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf",
    "010-pdflatex-forms/pdflatex-forms.pdf",
    "011-google-doc-document/google-doc-document.pdf",
    "012-libreoffice-form/libreoffice-form.pdf",
    "013-reportlab-overlay/reportlab-overlay.pdf",
    "014-outlines/mistitled_outlines_example.pdf",
    "015-arabic/habibi.pdf",
    "015-arabic/habibi-rotated.pdf",
    "015-arabic/habibi-oneline-cmap.pdf",
    "016-libre-office-link/libre-office-link.pdf",
    "017-unreadable-meta-data/unreadablemetadata.pdf",
    "018-base64-image/base64image.pdf",
    "019-grayscale-image/grayscale-image.pdf",
    "020-xmp/output_with_metadata_pymupdf.pdf",
    "021-pdfa/crazyones-pdfa.pdf",
    "022-pdfkit/pdfkit.pdf",
    "023-cmyk-image/cmyk-image.pdf",
    "024-annotations/annotated_pdf.pdf",
    "025-attachment/with-attachment.pdf",
    "026-latex-multicolumn/multicolumn.pdf",
)


def pdf_sample(path: str) -> Path:
    """A file of the sample corpus (`path` relative to pdf-samples/); skips the calling test
    (fails it in CI) when the corpus is not there."""
    return corpus_path("pdf-samples", path)


def corpus_entries() -> list[dict[str, Any]]:
    """files.json of the sample corpus, one entry per PDF; skips the calling test (fails it in
    CI) when the corpus is not there."""
    entries: list[dict[str, Any]] = json.loads(pdf_sample("files.json").read_text())["data"]
    return entries


def corpus_entry(path: str) -> dict[str, Any]:
    """The files.json entry of one of `PDF_SAMPLES`."""
    by_path = {entry["path"]: entry for entry in corpus_entries()}
    if path not in by_path:
        pytest.fail(f"{path} is not in the corpus's files.json: update PDF_SAMPLES")
    return by_path[path]


def make_pdf(pages: list[str]) -> bytes:
    """A text PDF with one entry of `pages` per page (lines split on newlines)."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=LETTER)
    for text in pages:
        y = 720
        for line in text.splitlines():
            canvas.drawString(72, y, line)
            y -= 14
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    """Fast retries and heartbeats, and the dependency-free embedder, for worker tests."""
    return settings.model_copy(
        update={
            "embedding_provider": "hashing",
            "retry_delays_seconds": [0.2, 0.4],
            "retry_jitter": 0.0,
            "worker_heartbeat_seconds": 0.5,
            "worker_takeover_seconds": 3.0,
            "worker_shutdown_grace_seconds": 5.0,
            "extract_timeout_seconds": 60.0,
        }
    )


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        default_queue_name=keys.QUEUE_NAME,
        job_serializer=json_dumps,
        job_deserializer=json_loads,
    )
    yield pool
    await pool.flushdb()
    await pool.aclose()


@dataclass
class Uploader:
    sessions: SessionFactory
    settings: Settings
    queue: ArqRedis

    async def upload(self, content: bytes, filename: str = "doc.pdf") -> Document:
        """Store the bytes, create the QUEUED document (committed), then enqueue it."""
        stored = await create_blob_store(self.settings, self.sessions).put(_once(content))
        async with self.sessions.begin() as session:
            case = await factories.case(session)
            document = factories.document(case.id, content, filename)
            document.blob_key = stored.key
            await DocumentRepository(session).add(document)
        await enqueue(
            self.queue, JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document.id)
        )
        return document


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


@pytest.fixture
def uploader(sessions: SessionFactory, settings: Settings, queue: ArqRedis) -> Uploader:
    return Uploader(sessions, settings, queue)


StateHook = Callable[[WorkerState], None]


@pytest.fixture
def run_worker(worker_settings: Settings, queue: ArqRedis) -> Callable[..., Awaitable[Worker]]:
    """Run a real arq Worker in burst mode until the queue is empty."""

    async def run(settings: Settings | None = None, prepare: StateHook | None = None) -> Worker:
        settings = settings or worker_settings
        state = await build_state(settings, queue)
        if prepare is not None:
            prepare(state)
        options: dict[str, Any] = {
            **worker_options(settings),
            "ctx": {"settings": settings, STATE_KEY: state},
            "burst": True,
            "poll_delay": 0,
            "handle_signals": False,
            "redis_pool": queue,
        }
        worker = Worker(**options)
        try:
            await worker.main()
        finally:
            await on_shutdown(worker.ctx)  # burst mode skips it: stop the heartbeat, close
        return worker

    return run


async def load(sessions: SessionFactory, document_id: Any) -> tuple[Document, list[DocumentChunk]]:
    async with sessions() as session:
        document = await session.get(Document, document_id)
        assert document is not None
        chunks = (
            await session.scalars(
                select(DocumentChunk)
                .where(DocumentChunk.document_id == document_id)
                .order_by(DocumentChunk.ordinal)
            )
        ).all()
        return document, list(chunks)


class EventLog:
    """Every progress event published on any document channel, by document."""

    def __init__(self) -> None:
        self.by_document: dict[str, list[ProgressEvent]] = {}

    def of(self, document_id: Any) -> list[ProgressEvent]:
        return self.by_document.get(str(document_id), [])


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[EventLog]:
    log = EventLog()
    client = Redis.from_url(settings.redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(keys.document_channel("*"))  # type: ignore[arg-type]

    async def collect() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                event = ProgressEvent.from_json(message["data"])
                log.by_document.setdefault(str(event.document_id), []).append(event)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.05)
    yield log
    task.cancel()
    await pubsub.aclose()
    await client.aclose()


async def settle() -> None:
    """Let the event collector drain what was just published."""
    await asyncio.sleep(0.2)
