"""Real `arq lexintel_jobs.worker.WorkerSettings` processes: crash takeover, graceful
shutdown, cancellation of a running document, and the health check."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from lexintel_core.cancellation import request_cancel
from lexintel_core.db import SessionFactory
from lexintel_core.models import Document
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from tests.jobs.conftest import EventLog, Uploader, load, make_pdf
from tests.workers import ARQ, Workers

S = ProcessingStatus
TAKEOVER_SECONDS = 4.0
DEFAULTS: dict[str, Any] = {
    "EMBEDDING_PROVIDER": "hashing",
    "WORKER_HEARTBEAT_SECONDS": 1,
    "WORKER_TAKEOVER_SECONDS": TAKEOVER_SECONDS,
    "RETRY_DELAYS_SECONDS": json.dumps([0.5, 0.5]),
    "WORKER_SHUTDOWN_GRACE_SECONDS": 30,
    # The slower engine keeps a 300-page document in flight long enough to interrupt.
    "PDF_ENGINE": "pypdf",
}


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(settings, tmp_path, **DEFAULTS)
    yield pool
    pool.stop_all()


def big_pdf(pages: int = 300) -> bytes:
    line = "The Tenant shall maintain the Premises in good repair, reasonable wear excepted."
    return make_pdf([f"Page {n} § {n}\n" + "\n".join([line] * 40) for n in range(1, pages + 1)])


async def wait_for(
    sessions: SessionFactory, document_id: Any, statuses: set[S], within: float
) -> Document:
    deadline = time.monotonic() + within
    while True:
        document, _ = await load(sessions, document_id)
        if document.status in statuses:
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"document still {document.status} after {within}s")
        await asyncio.sleep(0.05)


async def wait_for_progress(events: EventLog, document_id: Any, within: float) -> None:
    """Until extraction has reported some pages: the job is truly mid-document."""
    deadline = time.monotonic() + within
    while not any(e.status is S.EXTRACTING and e.percent > 0 for e in events.of(document_id)):
        assert time.monotonic() < deadline, "no extraction progress"
        await asyncio.sleep(0.02)


async def test_a_killed_workers_document_is_taken_over_with_one_set_of_chunks(
    uploader: Uploader, workers: Workers, sessions: SessionFactory, events: EventLog
) -> None:
    document = await uploader.upload(big_pdf(), "big.pdf")
    first = workers.start()
    await wait_for_progress(events, document.id, within=60)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.time()

    workers.start()
    await wait_for(sessions, document.id, {S.READY}, within=120)
    restarted = [e for e in events.of(document.id) if e.status is S.EXTRACTING and e.percent == 0][
        1
    ]
    # Takeover time plus the second worker's start-up and poll.
    assert restarted.timestamp.timestamp() - killed_at < TAKEOVER_SECONDS + 5, workers.logs()

    stored, chunks = await load(sessions, document.id)
    assert stored.attempts == 2
    assert stored.page_count == 300
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.embedding is not None for c in chunks)


async def test_a_frozen_workers_document_is_taken_over_and_it_writes_nothing_after(
    uploader: Uploader, workers: Workers, sessions: SessionFactory, events: EventLog
) -> None:
    """A worker host that dies without closing its connections, or is cut off and comes
    back: SIGSTOP leaves its TCP connections and database session open, as PostgreSQL sees
    a dead host until TCP keepalive gives up. Another worker takes the document over once
    its lease expires (a session lock would have kept it); the first one, resumed, finds
    its lease gone and writes nothing."""
    document = await uploader.upload(big_pdf(), "big.pdf")
    first = workers.start()
    await wait_for_progress(events, document.id, within=60)
    first.send_signal(signal.SIGSTOP)
    frozen_at = time.time()
    try:
        workers.start()
        ready = await wait_for(sessions, document.id, {S.READY}, within=90)
        ready_after = time.time() - frozen_at
        starts = [e for e in events.of(document.id) if e.status is S.EXTRACTING and e.percent == 0]
        taken_over_after = starts[1].timestamp.timestamp() - frozen_at
        print(f"taken over {taken_over_after:.1f}s, READY {ready_after:.1f}s after the freeze")
        assert taken_over_after < TAKEOVER_SECONDS + 5, workers.logs()
    finally:
        first.send_signal(signal.SIGCONT)
    _, chunks = await load(sessions, document.id)
    assert ready.attempts == 2
    assert ready.page_count == 300
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.embedding is not None for c in chunks)

    deadline = time.monotonic() + 60
    while "ends without writing anything more" not in workers.logs():
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.2)
    stored, chunks_after = await load(sessions, document.id)
    assert stored.status is S.READY
    assert stored.updated_at == ready.updated_at
    assert [c.id for c in chunks_after] == [c.id for c in chunks]
    assert events.of(document.id)[-1].status is S.READY


async def test_sigterm_lets_the_running_document_finish(
    uploader: Uploader, workers: Workers, sessions: SessionFactory, events: EventLog
) -> None:
    document = await uploader.upload(big_pdf(120), "big.pdf")
    worker = workers.start()
    await wait_for_progress(events, document.id, within=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, workers.logs()
    stored, chunks = await load(sessions, document.id)
    assert stored.status is S.READY, workers.logs()
    assert stored.attempts == 1
    assert chunks


async def test_sigterm_past_the_grace_period_requeues_without_burning_a_try(
    uploader: Uploader, workers: Workers, sessions: SessionFactory, events: EventLog
) -> None:
    document = await uploader.upload(big_pdf(), "big.pdf")
    worker = workers.start(WORKER_SHUTDOWN_GRACE_SECONDS=0)
    await wait_for_progress(events, document.id, within=60)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    requeued = await wait_for(sessions, document.id, {S.QUEUED}, within=10)
    assert requeued.error_message is not None
    assert "shut down" in requeued.error_message

    workers.start()
    stored = await wait_for(sessions, document.id, {S.READY}, within=120)
    assert stored.attempts == 1, workers.logs()


async def test_cancelling_a_running_document_stops_it_within_seconds(
    uploader: Uploader,
    workers: Workers,
    sessions: SessionFactory,
    events: EventLog,
    redis: Redis,
) -> None:
    document = await uploader.upload(big_pdf(), "big.pdf")
    workers.start()
    await wait_for_progress(events, document.id, within=60)
    await request_cancel(redis, document.id)
    cancelled_at = time.monotonic()
    await wait_for(sessions, document.id, {S.CANCELLED}, within=10)
    assert time.monotonic() - cancelled_at < 2.0
    _, chunks = await load(sessions, document.id)
    assert chunks == []


async def test_arq_check_reports_a_live_worker(
    settings: Settings, workers: Workers, redis: Redis
) -> None:
    assert ARQ is not None
    await redis.flushdb()
    env = workers.env()

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(
            ARQ, "--check", "lexintel_jobs.worker.WorkerSettings", env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return await process.wait()

    assert await check() == 1  # no worker yet
    workers.start()
    deadline = time.monotonic() + 60
    while await check() != 0:
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.5)


async def test_a_worker_whose_embedder_does_not_fit_the_schema_refuses_to_start(
    settings: Settings, workers: Workers
) -> None:
    worker = workers.start(EMBEDDING_DIMENSION=768)
    assert worker.wait(timeout=120) != 0
    logs = workers.logs()
    assert "384" in logs
    assert "768" in logs


async def test_every_log_line_of_a_job_names_its_document_job_and_try(
    uploader: Uploader, workers: Workers, sessions: SessionFactory
) -> None:
    document = await uploader.upload(make_pdf(["Exhibit A."]), "exhibit.pdf")
    worker = workers.start()
    await wait_for(sessions, document.id, {S.READY}, within=60)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    job_lines = [line for line in workers.logs().splitlines() if "lexintel.jobs" in line]
    assert job_lines
    assert all(f"document={document.id}" in line for line in job_lines), job_lines
    assert all(" job=document.process:" in line and " try=1 " in line for line in job_lines)
    # arq's own line for the job's start names it, without its arguments (the payload).
    [started] = [line for line in workers.logs().splitlines() if "→" in line]
    assert "document.process(…)" in started, started
    assert str(document.id) not in started
