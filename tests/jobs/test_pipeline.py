"""The document pipeline on a real arq Worker, PostgreSQL + pgvector and Redis."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import docx
import pytest
from arq.connections import ArqRedis
from arq.constants import result_key_prefix, retry_key_prefix
from arq.worker import Worker
from redis.asyncio import Redis
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core import keys
from lexintel_core.cancellation import request_cancel
from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import Embedder
from lexintel_core.errors import FailureCode, PermanentError, RetryableError
from lexintel_core.jobs import (
    EmbedDocument,
    ExtractDocument,
    JobName,
    ProcessDocument,
    enqueue,
    job_id,
)
from lexintel_core.models import Document
from lexintel_core.progress import ProgressEvent, Stage, publish_progress, read_snapshot
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs import lease
from lexintel_jobs.execution import finish_jobs_at_exit, run_job
from lexintel_jobs.job_run import JobRun
from lexintel_jobs.state import STATE_KEY, WorkerState, build_state
from lexintel_jobs.worker import redis_pool
from tests.jobs.conftest import EventLog, Uploader, load, make_pdf, settle

RunWorker = Callable[..., Awaitable[Worker]]


class FlakyEmbedder:
    """Wraps the real embedder; raises the queued errors on its first calls."""

    def __init__(self, inner: Embedder, errors: list[BaseException], always: bool = False) -> None:
        self.inner = inner
        self.errors = errors
        self.always = always
        self.calls: list[float] = []
        self.model_name = inner.model_name
        self.dimension = inner.dimension

    async def load(self) -> None:
        await self.inner.load()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors[0] if self.always else self.errors.pop(0)
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


def flaky(errors: list[BaseException], always: bool = False) -> Callable[[WorkerState], None]:
    def prepare(state: WorkerState) -> None:
        state.embedder = FlakyEmbedder(state.embedder, errors, always)

    return prepare


def assert_event_stream(events: list[Any], terminal: ProcessingStatus) -> None:
    seqs = [event.seq for event in events]
    assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
    terminals = [event for event in events if event.is_terminal]
    assert len(terminals) == 1
    assert events[-1].status is terminal


async def test_pdf_ends_ready_with_embedded_chunks_citing_their_pages(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    events: EventLog,
    redis: Redis,
    worker_settings: Settings,
) -> None:
    pdf = make_pdf(
        [
            "MASTER LEASE AGREEMENT\nThe Landlord leases the Premises to the Tenant.",
            "Section 9. Indemnification\nThe Tenant shall indemnify the Landlord.",
            "Section 12. Civil rights\nClaims under 42 U.S.C. § 1983 are excluded.",
        ]
    )
    document = await uploader.upload(pdf, "lease.pdf")
    worker = await run_worker()
    await settle()

    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY, stored.error_message
    assert stored.page_count == 3
    assert stored.attempts == 1
    assert stored.content_type == "application/pdf"
    assert worker.jobs_complete == 1
    assert chunks
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.embedding is not None
        assert len(chunk.embedding) == worker_settings.embedding_dimension
        assert chunk.embedding_model
    indemnity = [c for c in chunks if "indemnify" in c.text]
    assert indemnity
    assert all(c.page_start <= 2 <= c.page_end for c in indemnity)
    civil = [c for c in chunks if "§ 1983" in c.text]
    assert civil
    assert all(c.page_start <= 3 <= c.page_end for c in civil)

    stream = events.of(document.id)
    assert_event_stream(stream, ProcessingStatus.READY)
    assert [e.status for e in stream if e.percent == 0][:3] == [
        ProcessingStatus.EXTRACTING,
        ProcessingStatus.CHUNKING,
        ProcessingStatus.EMBEDDING,
    ]
    assert await read_snapshot(redis, document.id) == stream[-1]


def _docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("NON-DISCLOSURE AGREEMENT")
    document.add_paragraph("The Recipient shall hold the Confidential Information in trust.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Term"
    table.rows[0].cells[1].text = "Five years from the Effective Date"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


FORMATS: dict[str, tuple[bytes, str]] = {
    "utf8.txt": ("Lease § 4 – “Term”: twelve months — renewable.\n".encode(), "“Term”"),
    "latin1.txt": ("Café Müller agrees to § 12 of the lease.\n".encode("latin-1"), "Café Müller"),
    "bad-bytes.txt": (
        b"Clause 7 survives termination.\n\x81\xff\xfe\x00\x9d broken bytes\n" * 20,
        "Clause 7 survives termination.",
    ),
    "page.html": (
        b"<html><head><style>p{color:red}</style><script>alert('x')</script></head>"
        b"<body><h1>Order</h1><p>The motion is &sect; 7 <b>GRANTED</b>.</p></body></html>",
        "§ 7 GRANTED",
    ),
    "nda.docx": (_docx(), "Confidential Information"),
}


async def test_text_html_and_docx_documents_end_ready_with_their_text(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory
) -> None:
    uploaded = {name: await uploader.upload(data, name) for name, (data, _) in FORMATS.items()}
    await run_worker()
    for name, document in uploaded.items():
        stored, chunks = await load(sessions, document.id)
        assert stored.status is ProcessingStatus.READY, (
            name,
            stored.error_code,
            stored.error_message,
        )
        text = " ".join(" ".join(chunk.text.split()) for chunk in chunks)
        assert FORMATS[name][1] in text, (name, text)
    html_text = " ".join(c.text for c in (await load(sessions, uploaded["page.html"].id))[1])
    assert "alert" not in html_text
    assert "color:red" not in html_text


async def test_random_bytes_never_crash_the_worker(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory
) -> None:
    garbage = bytes((i * 7919 + 13) % 256 for i in range(5000))
    document = await uploader.upload(garbage, "notes.txt")
    worker = await run_worker()
    stored, _ = await load(sessions, document.id)
    assert stored.status in {ProcessingStatus.READY, ProcessingStatus.FAILED}
    if stored.status is ProcessingStatus.FAILED:
        assert stored.error_code in {FailureCode.UNSUPPORTED_TYPE, FailureCode.NO_TEXT}
    assert worker.jobs_failed == 0


async def test_retryable_failure_is_retried_with_backoff_then_succeeds(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, events: EventLog
) -> None:
    document = await uploader.upload(make_pdf(["Clause 1. Payment terms apply."]))
    embedder_errors: list[BaseException] = [RetryableError("embedding API returned 503")]
    holder: list[FlakyEmbedder] = []

    def prepare(state: WorkerState) -> None:
        flaky(embedder_errors)(state)
        assert isinstance(state.embedder, FlakyEmbedder)
        holder.append(state.embedder)

    worker = await run_worker(prepare=prepare)
    await settle()
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    assert stored.attempts == 2
    assert chunks
    assert worker.jobs_retried == 1
    first_call, second_call = holder[0].calls[0], holder[0].calls[1]
    assert second_call - first_call >= 0.2  # the first configured delay
    stream = events.of(document.id)
    retry_events = [
        e for e in stream if e.status is ProcessingStatus.QUEUED and "retrying" in e.message
    ]
    assert len(retry_events) == 1
    assert "503" in retry_events[0].message
    assert_event_stream(stream, ProcessingStatus.READY)


async def test_unknown_exceptions_are_retried_like_retryable_ones(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory
) -> None:
    document = await uploader.upload(make_pdf(["Clause 2. Notices."]))
    await run_worker(prepare=flaky([ConnectionResetError("peer reset")]))
    stored, _ = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    assert stored.attempts == 2


async def test_permanent_failure_is_not_retried(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, events: EventLog
) -> None:
    document = await uploader.upload(make_pdf(["Clause 3. Governing law."]))
    error = PermanentError("model rejected the input", code=FailureCode.TOO_LARGE)
    worker = await run_worker(prepare=flaky([error], always=True))
    await settle()
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.FAILED
    assert stored.error_code == FailureCode.TOO_LARGE
    assert stored.error_message == "model rejected the input"
    assert stored.attempts == 1
    assert worker.jobs_retried == 0
    assert chunks == []  # no half-written output survives a failure
    stream = events.of(document.id)
    assert_event_stream(stream, ProcessingStatus.FAILED)
    assert stream[-1].error_code == FailureCode.TOO_LARGE


async def test_exhausted_retries_end_failed_with_the_reason(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, events: EventLog
) -> None:
    document = await uploader.upload(make_pdf(["Clause 4. Severability."]))
    error = RetryableError("embedding API unreachable")
    worker = await run_worker(prepare=flaky([error], always=True))
    await settle()
    stored, _ = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.FAILED
    assert stored.error_code == FailureCode.RETRIES_EXHAUSTED
    assert stored.error_message is not None
    assert "after 3 tries" in stored.error_message
    assert "embedding API unreachable" in stored.error_message
    assert stored.attempts == 3
    assert worker.jobs_retried == 2
    assert_event_stream(events.of(document.id), ProcessingStatus.FAILED)


async def test_rerunning_a_half_finished_document_gives_one_set_of_chunks(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, queue: ArqRedis
) -> None:
    document = await uploader.upload(make_pdf(["Page one text.", "Page two text."] * 5))
    await run_worker()
    _, first_chunks = await load(sessions, document.id)

    # As if a worker died after chunking: the document is mid-pipeline and is delivered again.
    async with sessions.begin() as session:
        await session.execute(
            update(Document)
            .where(Document.id == document.id)
            .values(status=ProcessingStatus.EMBEDDING, generation=1)
        )
    await enqueue(
        queue, JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document.id, generation=1)
    )
    await run_worker()
    stored, second_chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    assert [c.text for c in second_chunks] == [c.text for c in first_chunks]
    assert [c.ordinal for c in second_chunks] == list(range(len(first_chunks)))


async def test_a_duplicate_delivery_of_finished_work_changes_nothing(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, queue: ArqRedis
) -> None:
    document = await uploader.upload(make_pdf(["Recital A."]))
    await run_worker()
    before, chunks_before = await load(sessions, document.id)
    await enqueue(
        queue, JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document.id, generation=7)
    )
    await run_worker()
    after, chunks_after = await load(sessions, document.id)
    assert after.status is ProcessingStatus.READY
    assert after.finished_at == before.finished_at
    assert [c.id for c in chunks_after] == [c.id for c in chunks_before]


async def test_a_redelivered_job_announces_an_end_its_first_run_could_not(
    uploader: Uploader, run_worker: RunWorker, queue: ArqRedis
) -> None:
    """The first run committed READY and was stopped before publishing it (killed, or
    cancelled by a shutdown): the snapshot still says EMBEDDING, and arq runs the job again."""
    document = await uploader.upload(make_pdf(["Recital A."]))
    await run_worker()
    stale = ProgressEvent(
        document_id=document.id,
        case_id=document.case_id,
        stage=Stage.EMBED,
        status=ProcessingStatus.EMBEDDING,
        percent=50.0,
    )
    assert await publish_progress(queue, stale, restart=True) is not None
    payload = ProcessDocument(document_id=document.id)
    await queue.delete(result_key_prefix + job_id(JobName.DOCUMENT_PROCESS, payload))
    assert await enqueue(queue, JobName.DOCUMENT_PROCESS, payload) is not None

    await run_worker()
    snapshot = await read_snapshot(queue, document.id)
    assert snapshot is not None
    assert snapshot.status is ProcessingStatus.READY
    assert snapshot.seq > 1


async def test_a_run_taken_over_from_a_live_worker_waits_for_it(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, engine: AsyncEngine
) -> None:
    """A worker cut off from Redis longer than the takeover time is still running the
    document (it holds the document's lease): the second run comes back later, try intact."""
    document = await uploader.upload(make_pdf(["Recital A."]))
    first_run = await lease.take(engine, document.id, 60.0)
    assert isinstance(first_run, lease.Lease)

    async def first_run_ends() -> ProcessingStatus:
        await asyncio.sleep(1.0)
        status = (await load(sessions, document.id))[0].status
        await first_run.release(engine)
        return status

    ending = asyncio.create_task(first_run_ends())
    await run_worker()
    assert await ending is ProcessingStatus.QUEUED  # left alone while the first run held it
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    assert stored.attempts == 1
    assert chunks


async def test_a_job_for_a_deleted_document_ends_quietly(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory
) -> None:
    document = await uploader.upload(make_pdf(["Soon gone."]))
    async with sessions.begin() as session:
        await session.execute(delete(Document).where(Document.id == document.id))
    worker = await run_worker()
    assert worker.jobs_complete == 1
    assert worker.jobs_failed == 0
    assert worker.jobs_retried == 0


async def test_cancelled_before_start_ends_cancelled_without_chunks(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    events: EventLog,
    redis: Redis,
) -> None:
    document = await uploader.upload(make_pdf(["Never processed."]))
    await request_cancel(redis, document.id)
    await run_worker()
    await settle()
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.CANCELLED
    assert chunks == []
    assert_event_stream(events.of(document.id), ProcessingStatus.CANCELLED)


async def test_an_invalid_payload_is_rejected_without_retry(
    run_worker: RunWorker, queue: ArqRedis
) -> None:
    await queue.enqueue_job("document.process", {"document_id": "not-a-uuid"})
    worker = await run_worker()
    assert worker.jobs_retried == 0
    assert worker.jobs_failed == 0
    assert await queue.zcard(keys.QUEUE_NAME) == 0


async def test_extract_and_embed_jobs_reprocess_a_ready_document(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    queue: ArqRedis,
    events: EventLog,
) -> None:
    document = await uploader.upload(make_pdf(["Article 1. Definitions.", "Article 2. Scope."]))
    await run_worker()
    _, first = await load(sessions, document.id)

    async with sessions.begin() as session:  # what reprocessing through the API does
        stored = await session.get(Document, document.id)
        assert stored is not None
        stored.transition_to(ProcessingStatus.QUEUED)
        stored.generation = 1
    await enqueue(
        queue, JobName.DOCUMENT_EXTRACT, ExtractDocument(document_id=document.id, generation=1)
    )
    worker = await run_worker()  # runs document.extract, which queues document.embed
    assert worker.jobs_complete == 2
    stored_after, second = await load(sessions, document.id)
    assert stored_after.status is ProcessingStatus.READY
    assert [c.text for c in second] == [c.text for c in first]
    assert {c.id for c in second}.isdisjoint({c.id for c in first})  # chunks were replaced

    # A new embedding model: document.embed re-embeds every chunk with it.
    def renamed(state: WorkerState) -> None:
        flaky([])(state)
        assert isinstance(state.embedder, FlakyEmbedder)
        state.embedder.model_name = "hashing-renamed"

    async with sessions.begin() as session:
        stored = await session.get(Document, document.id)
        assert stored is not None
        stored.transition_to(ProcessingStatus.QUEUED)
        stored.generation = 2
    await enqueue(
        queue, JobName.DOCUMENT_EMBED, EmbedDocument(document_id=document.id, generation=2)
    )
    await run_worker(prepare=renamed)
    await settle()
    final, third = await load(sessions, document.id)
    assert final.status is ProcessingStatus.READY
    assert [c.id for c in third] == [c.id for c in second]
    assert {c.embedding_model for c in third} == {"hashing-renamed"}
    assert events.of(document.id)[-1].status is ProcessingStatus.READY


async def test_the_packaged_minilm_model_embeds_documents_in_the_worker(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, worker_settings: Settings
) -> None:
    document = await uploader.upload(make_pdf(["The lessee shall pay rent on the first day."]))
    await run_worker(worker_settings.model_copy(update={"embedding_provider": "auto"}))
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    # The default backend on the CPU: ONNX Runtime, 8-bit weights (its own stored name).
    assert {c.embedding_model for c in chunks} == {"all-MiniLM-L6-v2+onnx-int8"}
    for chunk in chunks:
        assert chunk.embedding is not None
        assert abs(sum(v * v for v in chunk.embedding) - 1.0) < 1e-4


async def test_a_failure_to_record_the_outcome_reruns_the_job(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = await uploader.upload(make_pdf(["Clause 5. Waiver."]))
    real_finish = JobRun.finish
    calls: list[ProcessingStatus] = []

    async def flaky_finish(self: JobRun, status: ProcessingStatus, **fields: Any) -> bool:
        calls.append(status)
        if len(calls) == 1:
            raise ConnectionResetError("database went away while recording")
        return await real_finish(self, status, **fields)

    monkeypatch.setattr(JobRun, "finish", flaky_finish)
    error = PermanentError("unreadable", code=FailureCode.PDF_CORRUPT)
    worker = await run_worker(prepare=flaky([error], always=True))
    stored, _ = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.FAILED
    assert stored.error_code == FailureCode.PDF_CORRUPT
    assert calls == [ProcessingStatus.FAILED, ProcessingStatus.FAILED]
    assert worker.jobs_retried == 1


async def test_a_claim_cut_off_before_the_job_began_burns_no_try(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, queue: ArqRedis
) -> None:
    """A shutdown (grace 0) that cancels a job arq has just claimed, before any of its code
    ran, leaves arq's try count raised; only the tries that began count."""
    document = await uploader.upload(make_pdf(["Recital B."]))
    payload = ProcessDocument(document_id=document.id, generation=document.generation)
    await queue.set(retry_key_prefix + job_id(JobName.DOCUMENT_PROCESS, payload), 1)
    await run_worker()
    stored, _ = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    assert stored.attempts == 1


async def test_a_shutdown_that_surfaces_as_another_error_burns_no_try(
    uploader: Uploader, worker_settings: Settings, queue: ArqRedis, sessions: SessionFactory
) -> None:
    """A shutdown's cancellation can reach the job as another error: a COPY cut off
    mid-transaction, then its cleanup refused by the aborted transaction. That is still a
    shutdown: the job goes back to the queue and the try is given back."""
    document = await uploader.upload(make_pdf(["Recital C."]))
    started = asyncio.Event()

    async def handler(run: JobRun) -> str:
        await run.transition(ProcessingStatus.EXTRACTING, attempts=run.job_try)
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("current transaction is aborted") from None
        return "ready"

    state = await build_state(worker_settings, queue)
    ctx = {"job_id": "job-cut-off", STATE_KEY: state}
    payload = ProcessDocument(document_id=document.id, generation=document.generation)
    job = asyncio.create_task(
        run_job(ctx, JobName.DOCUMENT_PROCESS, handler, payload.model_dump(mode="json"))
    )
    try:
        await started.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    finally:
        await state.aclose()
    stored, _ = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.QUEUED
    assert stored.error_message is not None
    assert "shut down" in stored.error_message
    assert int(await queue.get(keys.job_tries_key("job-cut-off")) or 0) == 0


async def test_jobs_still_handing_back_when_the_loop_stops_finish_at_exit(
    uploader: Uploader, worker_settings: Settings, queue: ArqRedis, sessions: SessionFactory
) -> None:
    """arq's shutdown can end the worker's event loop while a job it cancelled is still
    handing itself back (when another task it cancelled raises first). The worker finishes
    those hand-backs at exit: the document QUEUED again, the try given back."""
    document = await uploader.upload(make_pdf(["Recital D."]))
    payload = ProcessDocument(document_id=document.id, generation=document.generation)

    def worker_process() -> None:  # its own event loop, as a worker process has
        loop = asyncio.new_event_loop()
        started = asyncio.Event()

        async def handler(run: JobRun) -> str:
            await run.transition(ProcessingStatus.EXTRACTING, attempts=run.job_try)
            started.set()
            await asyncio.sleep(60)
            return "ready"

        async def stopped_early(state: WorkerState) -> None:
            ctx = {"job_id": "job-handing-back", STATE_KEY: state}
            raw = payload.model_dump(mode="json")
            job = asyncio.ensure_future(run_job(ctx, JobName.DOCUMENT_PROCESS, handler, raw))
            await started.wait()
            job.cancel()
            raise asyncio.CancelledError  # what arq's close() does: the loop stops here

        redis = redis_pool(worker_settings)
        state = loop.run_until_complete(build_state(worker_settings, redis))
        try:
            with pytest.raises(asyncio.CancelledError):
                loop.run_until_complete(stopped_early(state))
            finish_jobs_at_exit(loop)
        finally:
            loop.run_until_complete(state.aclose())
            loop.run_until_complete(redis.aclose())
            loop.close()

    await asyncio.to_thread(worker_process)
    stored, _ = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.QUEUED
    assert stored.error_message is not None
    assert "shut down" in stored.error_message
    assert int(await queue.get(keys.job_tries_key("job-handing-back")) or 0) == 0
