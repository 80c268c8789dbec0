"""The worker's Prometheus metrics: counted by a real arq Worker, served over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker

from lexintel_core.db import SessionFactory
from lexintel_core.embedded_servers import free_port
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs import metrics
from lexintel_jobs.worker import on_shutdown, on_startup
from tests.jobs.conftest import Uploader, load, make_pdf

RunWorker = Callable[..., Awaitable[Worker]]
JOB = {"job": "document.process"}
SERIES = [
    ("lexintel_worker_jobs_started_total", JOB),
    ("lexintel_worker_jobs_succeeded_total", JOB),
    ("lexintel_worker_jobs_failed_total", JOB),
    ("lexintel_worker_jobs_retried_total", JOB),
    ("lexintel_worker_job_duration_seconds_count", JOB),
    ("lexintel_worker_job_queue_latency_seconds_count", JOB),
    ("lexintel_worker_pages_extracted_total", JOB),
    ("lexintel_worker_chunks_embedded_total", JOB),
]


def value(name: str, labels: dict[str, str] | None = None) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels or {})
    return found if found is not None else 0.0


def counts() -> dict[str, float]:
    return {name: value(name, labels) for name, labels in SERIES}


async def test_a_processed_document_is_counted_and_served_over_http(
    uploader: Uploader,
    run_worker: RunWorker,
    worker_settings: Settings,
    sessions: SessionFactory,
    queue: ArqRedis,
) -> None:
    before = counts()
    metrics.QUEUE_DEPTH.set(-1)
    document = await uploader.upload(make_pdf(["First page of the brief.", "Second page."]))
    await run_worker()

    stored, chunks = await load(sessions, document.id)
    assert stored.status == ProcessingStatus.READY
    assert chunks
    after = counts()
    delta = {name: after[name] - before[name] for name in after}
    assert delta == {
        "lexintel_worker_jobs_started_total": 1,
        "lexintel_worker_jobs_succeeded_total": 1,
        "lexintel_worker_jobs_failed_total": 0,
        "lexintel_worker_jobs_retried_total": 0,
        "lexintel_worker_job_duration_seconds_count": 1,
        "lexintel_worker_job_queue_latency_seconds_count": 1,
        "lexintel_worker_pages_extracted_total": 2,
        "lexintel_worker_chunks_embedded_total": len(chunks),
    }
    assert value("lexintel_worker_job_duration_seconds_sum", JOB) > 0
    assert value("lexintel_worker_queue_depth") == 0  # sampled after the job: queue empty

    # The endpoint, started and stopped by the worker's startup and shutdown hooks.
    port = free_port()
    settings = worker_settings.model_copy(update={"worker_metrics_port": port})
    ctx: dict[str, Any] = {"settings": settings, "redis": queue}
    await on_startup(ctx)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        await on_shutdown(ctx)
    assert response.status_code == 200
    text = response.text
    for name, number in after.items():
        if number:  # a label set never counted is not exported
            assert f'{name}{{job="document.process"}} {number}' in text, name
    assert "lexintel_worker_queue_depth " in text

    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/metrics")
