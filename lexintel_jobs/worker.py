"""The arq worker. Run it with `arq lexintel_jobs.worker.WorkerSettings` (or `lexintel
worker`); `lexintel worker --check` is the probe (database, migrations, Redis and a live
worker, answered within LEXINTEL_READINESS_TIMEOUT_SECONDS). `arq --check` still works but
rides out a Redis outage through the retries below before it answers.

Everything comes from `LEXINTEL_*` settings. Job arguments and results are JSON, never
pickle: a Redis that someone else can write to must not become code execution here."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import logging
import math
import os
import socket
import uuid
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.worker import Function

from lexintel_core import keys
from lexintel_core.connections import redis_options, redis_retry
from lexintel_core.jobs import JobName, json_dumps, json_loads
from lexintel_core.settings import Settings
from lexintel_jobs import metrics
from lexintel_jobs.execution import arq_function, arq_timeout_seconds, finish_jobs_at_exit
from lexintel_jobs.extraction import ocr_problem, tesseract_version
from lexintel_jobs.logs import configure_logging
from lexintel_jobs.pipeline import embed_document, extract_document, process_document
from lexintel_jobs.recovery import keep_recovering
from lexintel_jobs.state import STATE_KEY, build_state, state_of

logger = logging.getLogger("lexintel.worker")

HEALTH_CHECK_INTERVAL_SECONDS = 10
POLL_DELAY_SECONDS = 0.1


_BEAT_KEY = "lexintel_beat"
_METRICS_KEY = "lexintel_metrics_server"
_SAMPLES_KEY = "lexintel_queue_depth_samples"
_RECOVERY_KEY = "lexintel_recovery"


async def _beat(ctx: dict[str, Any], key: str, value: bytes) -> None:
    """Keep this worker's own liveness key fresh (arq's health key is shared by all the
    workers of a queue, so it cannot say how many are alive); its value tells what the worker
    can do (keys.WorkerInfo). Samples the queue depth too."""
    while True:
        with contextlib.suppress(Exception):  # a Redis blip must not stop the heartbeats
            await ctx["redis"].set(key, value, ex=HEALTH_CHECK_INTERVAL_SECONDS * 3)
        with contextlib.suppress(Exception):
            await metrics.sample_queue_depth(ctx["redis"])
        await asyncio.sleep(HEALTH_CHECK_INTERVAL_SECONDS)


async def on_startup(ctx: dict[str, Any]) -> None:
    configure_logging()
    atexit.register(finish_jobs_at_exit, asyncio.get_running_loop())
    if STATE_KEY not in ctx:  # tests may hand in a prepared state
        ctx[STATE_KEY] = await build_state(ctx["settings"], ctx["redis"])
    settings = state_of(ctx).settings
    ocr, note = await asyncio.to_thread(ocr_status, settings)
    (logger.info if ocr or settings.ocr == "off" else logger.warning)(note)
    key = keys.worker_key(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    value = keys.WorkerInfo(ocr=ocr).model_dump_json().encode()
    ctx[_BEAT_KEY] = (key, asyncio.create_task(_beat(ctx, key, value), name="lexintel-worker-beat"))
    ctx[_SAMPLES_KEY] = set()
    ctx[_RECOVERY_KEY] = asyncio.create_task(
        keep_recovering(state_of(ctx)), name="lexintel-recovery"
    )
    port = settings.worker_metrics_port
    if port is not None:
        ctx[_METRICS_KEY] = metrics.MetricsServer(port)


def ocr_status(settings: Settings) -> tuple[bool, str]:
    """(whether this worker can OCR scanned pages, a line for its log that says why not)."""
    if settings.ocr == "off":
        return False, "OCR is off (LEXINTEL_OCR=off): scanned pages will not be read"
    problem = ocr_problem(settings.ocr_languages)
    if problem is not None:
        return False, f"OCR unavailable: {problem}; documents that need it end ocr_unavailable"
    return True, (
        f"OCR: {tesseract_version()}, languages {settings.ocr_languages}, "
        f"{settings.ocr_dpi} dpi, LEXINTEL_OCR={settings.ocr}"
    )


async def _sample_queue_depth(redis: Any) -> None:
    with contextlib.suppress(Exception):
        await metrics.sample_queue_depth(redis)


async def after_job_end(ctx: dict[str, Any]) -> None:
    """Sample the queue depth now that the job has left the queue. In a task of its own: a
    shutdown cancels the job's task, and would cancel anything awaited here with it."""
    samples: set[asyncio.Task[None]] | None = ctx.get(_SAMPLES_KEY)
    if samples is not None:
        task = asyncio.create_task(_sample_queue_depth(ctx["redis"]))
        samples.add(task)
        task.add_done_callback(samples.discard)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def on_shutdown(ctx: dict[str, Any]) -> None:
    atexit.unregister(finish_jobs_at_exit)  # a clean shutdown: every job has ended
    if _SAMPLES_KEY in ctx:
        await asyncio.gather(*ctx.pop(_SAMPLES_KEY))
    if _METRICS_KEY in ctx:
        await ctx.pop(_METRICS_KEY).aclose()
    if _RECOVERY_KEY in ctx:
        await _cancel(ctx.pop(_RECOVERY_KEY))
    if _BEAT_KEY in ctx:
        key, task = ctx.pop(_BEAT_KEY)
        await _cancel(task)
        with contextlib.suppress(Exception):
            await ctx["redis"].delete(key)
    if STATE_KEY in ctx:
        await state_of(ctx).aclose()


def functions(settings: Settings) -> list[Function]:
    return [
        arq_function(JobName.DOCUMENT_PROCESS, process_document, settings),
        arq_function(JobName.DOCUMENT_EXTRACT, extract_document, settings),
        arq_function(JobName.DOCUMENT_EMBED, embed_document, settings),
    ]


def redis_pool(settings: Settings) -> ArqRedis:
    """The worker's Redis client (`ctx["redis"]`), built here: arq's RedisSettings carry no
    socket timeouts or keepalive, and a worker must notice a connection that died silently.
    Nothing connects until the worker runs."""
    pool: ArqRedis = ArqRedis.from_url(settings.redis_url, **redis_options(settings))
    pool.job_serializer = json_dumps
    pool.job_deserializer = json_loads
    pool.default_queue_name = keys.QUEUE_NAME
    return pool


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`, from settings."""
    return {
        "functions": functions(settings),
        "queue_name": keys.QUEUE_NAME,
        "redis_pool": redis_pool(settings),
        # What `arq --check` connects with (the worker itself uses redis_pool).
        "redis_settings": dataclasses.replace(
            RedisSettings.from_dsn(settings.redis_url),
            conn_timeout=math.ceil(settings.redis_connect_timeout_seconds),
            **redis_retry(settings),
        ),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "after_job_end": after_job_end,
        "ctx": {"settings": settings},
        "max_jobs": settings.worker_concurrency,
        "job_timeout": arq_timeout_seconds(settings),
        "poll_delay": POLL_DELAY_SECONDS,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "job_completion_wait": int(settings.worker_shutdown_grace_seconds),
        "job_serializer": json_dumps,
        "job_deserializer": json_loads,
        "keep_result": 3600,
    }


def _settings_class() -> type:
    # Reads the environment (no connections) when arq imports this module.
    return type("WorkerSettings", (), worker_options(Settings()))


WorkerSettings = _settings_class()
