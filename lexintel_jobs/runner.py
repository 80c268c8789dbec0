"""The wrapper around every job: payload validation, tries, retries with backoff and
jitter, the heartbeat that keeps a crashed worker's job from being stranded, and the
terminal status when a job fails for good (arq itself runs no hook then)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq.constants import in_progress_key_prefix, retry_key_prefix
from arq.worker import Function, Retry, func
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lexintel_core.errors import (
    DocumentCancelled,
    DocumentGone,
    ErrorCode,
    InvalidInput,
    LexIntelError,
    PermanentError,
)
from lexintel_core.jobs import DocumentJob, JobName, validate_payload
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs import metrics
from lexintel_jobs.logs import job_log_context
from lexintel_jobs.run import JobRun
from lexintel_jobs.state import WorkerState, state_of

logger = logging.getLogger("lexintel.jobs")

Stage = Callable[[JobRun], Awaitable[str]]

# We count tries ourselves (settings.max_tries) so that the last one can mark the document
# FAILED; arq's own limit only has to be out of the way.
ARQ_MAX_TRIES = 1000
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


def retry_delay(settings: Settings, job_try: int) -> float:
    """Backoff before try `job_try + 1`: the configured delay plus up to `retry_jitter` of it."""
    delays = settings.retry_delays_seconds
    base = delays[min(job_try, len(delays)) - 1] if delays else 0.0
    return base * (1 + random.uniform(0, settings.retry_jitter))  # noqa: S311 - not crypto


async def _heartbeat(state: WorkerState, job_id: str) -> None:
    """Keep arq's in-progress key short-lived but alive while the job runs: if this worker
    is killed, the key expires and another worker takes the job over within the takeover
    time, instead of after arq's default (the longest job timeout)."""
    settings = state.settings
    key = in_progress_key_prefix + job_id
    takeover_ms = int(settings.worker_takeover_seconds * 1000)
    while True:
        try:
            await state.redis.pexpire(key, takeover_ms)
        except Exception:
            logger.warning("heartbeat failed; will try again", exc_info=True)
        await asyncio.sleep(settings.worker_heartbeat_seconds)


async def run_job(ctx: dict[str, Any], name: JobName, stage: Stage, raw: Any) -> str:
    state = state_of(ctx)
    job_id: str = ctx["job_id"]
    job_try: int = ctx["job_try"]
    try:
        payload = validate_payload(name, raw)
    except InvalidInput as exc:
        logger.error("rejected job %s: %s (not retried)", job_id, exc)
        return "invalid"
    assert isinstance(payload, DocumentJob)
    document_id = payload.document_id
    run = JobRun(state, name, document_id, job_id, job_try, payload.generation)
    settings = state.settings
    with job_log_context(document_id=document_id, job_id=job_id, job_try=job_try):
        if job_try > settings.max_tries:
            return await _give_up(
                run, job_try - 1, "the worker running it stopped before it finished"
            )
        heartbeat = asyncio.create_task(_heartbeat(state, job_id))
        claim = None
        try:
            claim = await _claim(state, document_id)
            if claim is None:
                await _another_run_is_alive(run)
            async with asyncio.timeout(settings.job_timeout_seconds):
                outcome = await stage(run)
            logger.info("%s finished: %s", name, outcome)
            return outcome
        except DocumentGone as exc:
            logger.info("%s; nothing to do", exc.message)
            return "gone"
        except DocumentCancelled:
            await _settle(run, run.finish(ProcessingStatus.CANCELLED))
            logger.info("cancelled")
            return "cancelled"
        except PermanentError as exc:
            logger.warning("failed permanently: %s", exc)
            await _settle(
                run,
                run.finish(ProcessingStatus.FAILED, error_code=exc.code, error_message=exc.message),
            )
            return "failed"
        except asyncio.CancelledError:
            # Shutdown ran out of grace: hand the job back without burning a try.
            await asyncio.shield(_requeue_after_shutdown(run))
            raise
        except Retry:
            raise
        except Exception as exc:
            return await _retry_or_fail(run, exc)
        finally:
            heartbeat.cancel()
            if claim is not None:
                await _release(claim, document_id)


def _lock_key(document_id: uuid.UUID) -> int:
    return int.from_bytes(document_id.bytes[:8], "big", signed=True)


async def _claim(state: WorkerState, document_id: uuid.UUID) -> AsyncConnection | None:
    """A connection holding a PostgreSQL advisory lock on the document, or None when another
    run of it holds the lock. The lock lives as long as the holder's connection: a killed
    worker frees it at once, while a run that is only cut off from Redis (and taken over
    because its in-progress key expired) keeps its document to itself."""
    connection = await state.engine.connect()
    try:
        if await connection.scalar(_TRY_LOCK, {"key": _lock_key(document_id)}):
            return connection
    except BaseException:
        await connection.close()
        raise
    await connection.close()
    return None


async def _release(connection: AsyncConnection, document_id: uuid.UUID) -> None:
    try:
        await connection.execute(_UNLOCK, {"key": _lock_key(document_id)})
    except Exception:  # a broken connection: dropping it frees the lock
        await connection.invalidate()
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _another_run_is_alive(run: JobRun) -> None:
    """Come back after the takeover time, without burning a try: this job was taken over
    from a worker that is still running it."""
    delay = run.state.settings.worker_takeover_seconds
    logger.info("another run of this document is still going on; trying again in %.0fs", delay)
    await _refund_try(run)
    raise Retry(defer=delay)


async def _refund_try(run: JobRun) -> None:
    """Give back the try arq counted when this run started."""
    await run.state.redis.decr(retry_key_prefix + run.job_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LexIntelError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the job ran past its time limit"
    return f"{type(exc).__name__}: {exc}"


async def _retry_or_fail(run: JobRun, exc: Exception) -> str:
    settings = run.state.settings
    reason = _describe(exc)
    if run.job_try >= settings.max_tries:
        logger.error("try %d of %d failed, giving up: %s", run.job_try, settings.max_tries, reason)
        return await _give_up(run, run.job_try, reason)
    delay = retry_delay(settings, run.job_try)
    logger.warning(
        "try %d of %d failed, retrying in %.1fs: %s",
        run.job_try,
        settings.max_tries,
        delay,
        reason,
        exc_info=not isinstance(exc, LexIntelError),
    )
    try:
        await run.requeue(f"try {run.job_try} failed, retrying in {delay:.0f}s: {reason}")
    except Exception:
        logger.warning("could not record the retry on the document", exc_info=True)
    raise Retry(defer=delay) from exc


async def _give_up(run: JobRun, tries: int, reason: str) -> str:
    await _settle(
        run,
        run.finish(
            ProcessingStatus.FAILED,
            error_code=ErrorCode.RETRIES_EXHAUSTED,
            error_message=f"failed after {tries} tries: {reason}"[:1000],
        ),
    )
    return "failed"


async def _settle(run: JobRun, recording: Awaitable[bool]) -> None:
    """Record a document's end; if that fails (a database blip), run the job again rather
    than leave the document stuck in a running status."""
    try:
        await recording
    except Exception as exc:
        delay = retry_delay(run.state.settings, 1)
        logger.warning("could not record the outcome, re-running in %.1fs", delay, exc_info=True)
        raise Retry(defer=delay) from exc


async def _requeue_after_shutdown(run: JobRun) -> None:
    try:
        await _refund_try(run)  # a shutdown is not the job's fault
        await run.requeue("the worker shut down; the document will be processed again")
        logger.info("worker shutting down: job handed back to the queue")
    except Exception:
        logger.warning("could not re-queue after shutdown", exc_info=True)


def arq_function(name: JobName, stage: Stage, settings: Settings) -> Function:
    async def job(ctx: dict[str, Any], payload: Any) -> str:
        return await metrics.measure_job(ctx, str(name), run_job(ctx, name, stage, payload))

    job.__qualname__ = job.__name__ = str(name).replace(".", "_")
    return func(
        job,
        name=str(name),
        # Our own limit (settings.job_timeout_seconds) fires first and is handled above.
        timeout=settings.job_timeout_seconds + 60,
        max_tries=ARQ_MAX_TRIES,
    )
