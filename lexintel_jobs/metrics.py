"""The worker's Prometheus metrics, in this process's own registry, and the HTTP endpoint that
serves them (`LEXINTEL_WORKER_METRICS_PORT`). Job metrics are labelled by job name."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

from arq.worker import Retry
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from redis.asyncio import Redis

from lexintel_core import keys

logger = logging.getLogger("lexintel.jobs")

REGISTRY = CollectorRegistry()

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, float("inf"))
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, float("inf"))

JOBS_STARTED = Counter(
    "lexintel_worker_jobs_started", "Jobs this worker started.", ["job"], registry=REGISTRY
)
JOBS_SUCCEEDED = Counter(
    "lexintel_worker_jobs_succeeded",
    "Jobs that ended without an error (done, or nothing left to do: cancelled, deleted).",
    ["job"],
    registry=REGISTRY,
)
JOBS_FAILED = Counter(
    "lexintel_worker_jobs_failed",
    "Jobs that failed for good (invalid payload, permanent error, tries exhausted).",
    ["job"],
    registry=REGISTRY,
)
JOBS_RETRIED = Counter(
    "lexintel_worker_jobs_retried",
    "Job tries that failed and were put back on the queue to run again.",
    ["job"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "lexintel_worker_job_duration_seconds",
    "Time one try of a job ran.",
    ["job"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
JOB_QUEUE_LATENCY = Histogram(
    "lexintel_worker_job_queue_latency_seconds",
    "Time from a job's enqueueing (or the end of its retry backoff) to its start.",
    ["job"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PAGES_EXTRACTED = Counter(
    "lexintel_worker_pages_extracted", "Pages extracted from documents.", ["job"], registry=REGISTRY
)
CHUNKS_EMBEDDED = Counter(
    "lexintel_worker_chunks_embedded", "Chunks embedded.", ["job"], registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "lexintel_worker_queue_depth",
    "Jobs in the queue, deferred retries included (sampled by the worker).",
    registry=REGISTRY,
)

_FAILED_OUTCOMES = frozenset({"failed", "invalid"})


def _queued_at(ctx: dict[str, Any]) -> float | None:
    """When the job became runnable, in epoch seconds: its queue score (the enqueue time, or
    the end of a retry's backoff), else arq's enqueue time."""
    score = ctx.get("score")
    if isinstance(score, int | float) and score > 0:
        return float(score) / 1000
    enqueued = ctx.get("enqueue_time")
    return enqueued.timestamp() if isinstance(enqueued, datetime) else None


async def measure_job(ctx: dict[str, Any], job: str, run: Awaitable[str]) -> str:
    """Await one try of a job, counting how it ended."""
    JOBS_STARTED.labels(job).inc()
    queued_at = _queued_at(ctx)
    if queued_at is not None:
        JOB_QUEUE_LATENCY.labels(job).observe(max(0.0, time.time() - queued_at))
    started = time.perf_counter()
    try:
        outcome = await run
    except Retry:
        JOBS_RETRIED.labels(job).inc()
        raise
    except Exception:
        JOBS_FAILED.labels(job).inc()
        raise
    finally:
        JOB_DURATION.labels(job).observe(time.perf_counter() - started)
    (JOBS_FAILED if outcome in _FAILED_OUTCOMES else JOBS_SUCCEEDED).labels(job).inc()
    return outcome


async def sample_queue_depth(redis: Redis) -> None:
    QUEUE_DEPTH.set(await redis.zcard(keys.QUEUE_NAME))


class MetricsServer:
    """`/metrics` over HTTP on a daemon thread."""

    def __init__(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - for scrapers
        server, thread = start_http_server(port, addr=addr, registry=REGISTRY)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port: int = server.server_port
        logger.info("serving worker metrics on port %d", self.port)

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    async def aclose(self) -> None:
        await asyncio.to_thread(self._stop)
