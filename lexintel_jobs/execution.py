"""The wrapper around every job: payload validation, the document's lease, tries, retries
with backoff and jitter, the heartbeat that keeps a crashed worker's job from being stranded
(and renews the lease), and the terminal status when a job fails for good (arq itself runs
no hook then)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from arq.constants import in_progress_key_prefix
from arq.worker import Function, Retry, func

from lexintel_core import keys
from lexintel_core.errors import (
    DocumentCancelled,
    DocumentGone,
    FailureCode,
    InvalidInput,
    LexIntelError,
    PermanentError,
)
from lexintel_core.jobs import DocumentJob, JobName, validate_payload
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs import lease, metrics
from lexintel_jobs.job_run import JobRun
from lexintel_jobs.lease import Lease, LeaseLost
from lexintel_jobs.logs import job_log_context
from lexintel_jobs.state import WorkerState, state_of

logger = logging.getLogger("lexintel.jobs")

# What a job does with its run: the stages it runs (lexintel_jobs.pipeline); its outcome.
JobHandler = Callable[[JobRun], Awaitable[str]]

# We count tries ourselves (settings.max_tries, keys.job_tries_key) so that the last one can
# mark the document FAILED and a shutdown never burns one; arq's limit only has to be out of
# the way.
ARQ_MAX_TRIES = 1000
_TRIES_TTL_SECONDS = 88400  # as long as arq keeps its own count
# A run that finds the lease held comes back this long after the holder's lease would expire.
_LEASE_MARGIN_SECONDS = 0.2
# The jobs this process is running (their tasks), and how long a worker whose event loop
# stopped early lets them hand themselves back (finish_jobs_at_exit).
_running: set[asyncio.Task[Any]] = set()
_EXIT_SECONDS = 10.0


def retry_delay(settings: Settings, job_try: int) -> float:
    """Backoff before try `job_try + 1`: the configured delay plus up to `retry_jitter` of it."""
    delays = settings.retry_delays_seconds
    base = delays[min(job_try, len(delays)) - 1] if delays else 0.0
    return base * (1 + random.uniform(0, settings.retry_jitter))  # noqa: S311 - not crypto


async def _heartbeat(run: JobRun) -> None:
    """Keep arq's in-progress key short-lived but alive while the job runs, and renew the
    document's lease: if this worker dies, the key and the lease expire and another worker
    takes the job over within the takeover time, instead of after arq's default (the
    longest job timeout). Stops once another run took the lease: the job is its own now."""
    state = run.state
    settings = state.settings
    key = in_progress_key_prefix + run.job_id
    takeover_ms = int(settings.worker_takeover_seconds * 1000)
    while True:
        try:
            await state.redis.pexpire(key, takeover_ms)
        except Exception:
            logger.warning("heartbeat failed; will try again", exc_info=True)
        if run.lease is not None and not await _renew(run, run.lease):
            logger.warning("another run took this document's lease over: stopping this one")
            return
        await asyncio.sleep(settings.worker_heartbeat_seconds)


async def _renew(run: JobRun, held: Lease) -> bool:
    """False once another run holds the lease. The statement is shielded: cancelling the
    heartbeat (the job ended) must not cut it short, which would break its connection."""
    renewal = asyncio.ensure_future(_renew_once(run, held))
    try:
        async with asyncio.timeout(run.state.settings.worker_heartbeat_seconds):
            return await asyncio.shield(renewal)
    except TimeoutError:
        logger.warning("renewing the document's lease takes long; will try again")
        return True


async def _renew_once(run: JobRun, held: Lease) -> bool:
    """A database blip is only logged: the lease lasts the takeover time, and every write
    checks it anyway."""
    try:
        async with run.state.engine.begin() as connection:
            return await held.renew(connection)
    except Exception:
        logger.warning("could not renew the document's lease; will try again", exc_info=True)
        return True


async def run_job(ctx: dict[str, Any], name: JobName, handler: JobHandler, raw: Any) -> str:
    task = asyncio.current_task()
    assert task is not None
    _running.add(task)
    try:
        return await _run_job(ctx, name, handler, raw)
    finally:
        _running.discard(task)


def finish_jobs_at_exit(loop: asyncio.AbstractEventLoop) -> None:
    """Let the jobs still running when the worker's event loop stopped hand themselves back
    (the try given back, the document QUEUED), for at most `_EXIT_SECONDS`.

    arq's shutdown cancels every task, then gathers them without `return_exceptions`: when a
    task it cancelled before any job code ran raises first, the process ends at once, while
    other jobs are still in their cancellation handling. The worker registers this to run
    at exit (lexintel_jobs.worker)."""
    pending = [task for task in _running if not task.done()]
    if not pending or loop.is_closed() or loop.is_running():
        return
    for task in pending:
        if not task.cancelling():
            task.cancel()
    loop.run_until_complete(asyncio.wait(pending, timeout=_EXIT_SECONDS))


async def _run_job(ctx: dict[str, Any], name: JobName, handler: JobHandler, raw: Any) -> str:
    state = state_of(ctx)
    job_id: str = ctx["job_id"]
    try:
        payload = validate_payload(name, raw)
    except InvalidInput as exc:
        logger.error("rejected job %s: %s (not retried)", job_id, exc)
        return "invalid"
    assert isinstance(payload, DocumentJob)
    try:
        job_try = await _begin_try(state, job_id)
    except Exception as exc:  # Redis is out of reach: arq's own retry needs it too
        delay = retry_delay(state.settings, 1)
        logger.warning("could not count the try of job %s, retrying in %.1fs", job_id, delay)
        raise Retry(defer=delay) from exc
    document_id = payload.document_id
    run = JobRun(state, name, document_id, job_id, job_try, payload.generation)
    with job_log_context(document_id=document_id, job_id=job_id, job_try=job_try):
        heartbeat = asyncio.create_task(_heartbeat(run))
        try:
            outcome = await _run(run, handler)
            await _forget_tries(run)
            return outcome
        except LeaseLost as exc:
            # Not a failure: the run that took over owns the document, its status and its
            # progress. No retry, no status, no event from here.
            logger.warning("%s; this run ends without writing anything more", exc.message)
            return "taken over"
        finally:
            heartbeat.cancel()
            await _release(run)


async def _begin_try(state: WorkerState, job_id: str) -> int:
    """Count a try of this job as begun; its number. arq's own count (`ctx["job_try"]`) also
    counts a claim that a shutdown cancelled before this code ran, which no handler here can
    give back. A shutdown that lands while this count is in flight gives it back."""
    key = keys.job_tries_key(job_id)

    async def count() -> int:
        async with state.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, _TRIES_TTL_SECONDS)
            tries, _ = await pipe.execute()
        return int(tries)

    counting = asyncio.ensure_future(count())
    try:
        return await asyncio.shield(counting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await counting
            await state.redis.decr(key)
        raise


async def _forget_tries(run: JobRun) -> None:
    """The job is over (not to be retried): its count goes."""
    with contextlib.suppress(Exception):  # it expires anyway
        await run.state.redis.delete(keys.job_tries_key(run.job_id))


async def _run(run: JobRun, handler: JobHandler) -> str:
    settings = run.state.settings
    try:
        await _take_lease(run)
        if run.job_try > settings.max_tries:
            return await _give_up(
                run, run.job_try - 1, "the worker running it stopped before it finished"
            )
        async with asyncio.timeout(settings.job_timeout_seconds):
            outcome = await handler(run)
        logger.info("%s finished: %s", run.name, outcome)
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
    except (Retry, LeaseLost):
        raise
    except Exception as exc:
        if _being_cancelled():
            # The shutdown's cancellation surfaced as another error (a statement cut off
            # mid-transaction, then its cleanup refused by the aborted transaction): still a
            # shutdown, not a failed try.
            await asyncio.shield(_requeue_after_shutdown(run))
            raise asyncio.CancelledError from exc
        return await _retry_or_fail(run, exc)


def _being_cancelled() -> bool:
    """Whether this job's task has a cancellation pending (a shutdown). Our own job time
    limit is not one: `asyncio.timeout` withdraws its cancellation before raising."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _take_lease(run: JobRun) -> None:
    """Take the document's lease, or come back when the run holding it would lose it."""
    taken = await lease.take(
        run.state.engine, run.document_id, run.state.settings.worker_takeover_seconds
    )
    if not isinstance(taken, Lease):
        await _another_run_is_alive(run, taken)
    run.lease = taken


async def _release(run: JobRun) -> None:
    try:
        await run.release_lease()
    except Exception:  # it expires by itself within the takeover time
        logger.warning("could not release the document's lease", exc_info=True)


async def _another_run_is_alive(run: JobRun, expires_in: float) -> NoReturn:
    """Come back when the other run's lease would expire, without burning a try: this job
    was taken over from a worker that is still running it (cut off from Redis, not from
    the database), or from one that died and whose lease has not run out yet."""
    delay = min(expires_in, run.state.settings.worker_takeover_seconds) + _LEASE_MARGIN_SECONDS
    logger.info(
        "another run of this document holds its lease (%.1fs more unless renewed); "
        "trying again in %.1fs",
        expires_in,
        delay,
    )
    await _refund_try(run)
    raise Retry(defer=delay)


async def _refund_try(run: JobRun) -> None:
    """Give back the try counted when this run began."""
    await run.state.redis.decr(keys.job_tries_key(run.job_id))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LexIntelError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the job ran past its time limit"
    return f"{type(exc).__name__}: {exc}"


async def _retry_or_fail(run: JobRun, exc: Exception) -> str:
    settings = run.state.settings
    reason = _describe(exc)
    if run.lease is None:
        # Not even the lease could be taken (the database is unreachable): nothing can be
        # recorded on the document, so try again, even past the last try.
        delay = retry_delay(settings, min(run.job_try, settings.max_tries))
        logger.warning("could not take the document's lease, retrying in %.1fs: %s", delay, reason)
        raise Retry(defer=delay) from exc
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
    except LeaseLost:
        raise
    except Exception:
        logger.warning("could not record the retry on the document", exc_info=True)
    raise Retry(defer=delay) from exc


async def _give_up(run: JobRun, tries: int, reason: str) -> str:
    await _settle(
        run,
        run.finish(
            ProcessingStatus.FAILED,
            error_code=FailureCode.RETRIES_EXHAUSTED,
            error_message=f"failed after {tries} tries: {reason}"[:1000],
        ),
    )
    return "failed"


async def _settle(run: JobRun, recording: Awaitable[bool]) -> None:
    """Record a document's end; if that fails (a database blip), run the job again rather
    than leave the document stuck in a running status."""
    try:
        await recording
    except LeaseLost:
        raise
    except Exception as exc:
        delay = retry_delay(run.state.settings, 1)
        logger.warning("could not record the outcome, re-running in %.1fs", delay, exc_info=True)
        raise Retry(defer=delay) from exc


async def _requeue_after_shutdown(run: JobRun) -> None:
    try:
        await _refund_try(run)  # a shutdown is not the job's fault
        if run.holds_lease:  # else it had not started, or the document is another run's
            await run.requeue("the worker shut down; the document will be processed again")
        logger.info("worker shutting down: job handed back to the queue")
    except Exception:
        logger.warning("could not re-queue after shutdown", exc_info=True)


def arq_timeout_seconds(settings: Settings) -> float:
    """arq's own limit on a job (and its claim): past ours (`settings.job_timeout_seconds`,
    which fires first and is handled above), so that ours always has time to end the run."""
    return settings.job_timeout_seconds + 60


def arq_function(name: JobName, handler: JobHandler, settings: Settings) -> Function:
    async def job(ctx: dict[str, Any], payload: Any) -> str:
        return await metrics.measure_job(ctx, str(name), run_job(ctx, name, handler, payload))

    job.__qualname__ = job.__name__ = str(name).replace(".", "_")
    return func(
        job,
        name=str(name),
        timeout=arq_timeout_seconds(settings),
        max_tries=ARQ_MAX_TRIES,
    )
