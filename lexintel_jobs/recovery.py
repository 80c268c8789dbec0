"""Queue again the documents that have no job: PostgreSQL is the source of truth, Redis only
carries the queue. A document stays QUEUED (or half-processed) with nothing in Redis to move
it when Redis lost its data (restarted without an append-only file, failed over to a replica
that had not caught up) or when the API committed an upload but could not reach Redis."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from sqlalchemy import select

from lexintel_core.jobs import PAYLOADS, JobName, ProcessDocument, enqueue, job_id
from lexintel_core.models import Document, utcnow
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.state import WorkerState

logger = logging.getLogger("lexintel.jobs.recovery")

UNFINISHED = [status for status in ProcessingStatus if not status.is_terminal]


def _job_ids(document: Document) -> list[str]:
    """The ids of every job of this document's generation (they are fixed by the payload)."""
    identifiers = []
    for name, payload_type in PAYLOADS.items():
        payload = payload_type.model_validate(
            {"document_id": document.id, "generation": document.generation}
        )
        identifiers.append(job_id(name, payload))
    return identifiers


async def _has_job(state: WorkerState, identifiers: list[str]) -> bool:
    """Whether any of these jobs is queued, deferred or running."""
    keys = [prefix + i for i in identifiers for prefix in (job_key_prefix, in_progress_key_prefix)]
    return bool(await state.redis.exists(*keys))


async def _shorten_unbeaten_claims(state: WorkerState, identifiers: list[str]) -> None:
    """Cut to the takeover time any in-progress key that no heartbeat keeps short.

    arq claims a job with an in-progress key that lives as long as the longest job timeout; the
    job's heartbeat cuts it to the takeover time as soon as the job starts. A worker stopped
    (SIGTERM, SIGKILL) between the claim and the start leaves the long key behind, and it would
    hold the job back for minutes."""
    takeover_ms = int(state.settings.worker_takeover_seconds * 1000)
    for identifier in identifiers:
        key = in_progress_key_prefix + identifier
        if await state.redis.pexpire(key, takeover_ms, lt=True):
            logger.warning(
                "job %s was claimed by a worker that stopped before starting it: "
                "free again in %.0fs",
                identifier,
                state.settings.worker_takeover_seconds,
            )


async def requeue_stranded(state: WorkerState) -> int:
    """Queue `document.process` again for every unfinished document untouched for
    `recovery_after_seconds` that has no job in Redis; returns how many were queued. Such a
    document whose job is claimed but was never started has the claim cut short."""
    cutoff = utcnow() - timedelta(seconds=state.settings.recovery_after_seconds)
    async with state.sessions() as session:
        stranded = await session.scalars(
            select(Document).where(Document.status.in_(UNFINISHED), Document.updated_at < cutoff)
        )
        documents = list(stranded)
    queued = 0
    for document in documents:
        identifiers = _job_ids(document)
        if await _has_job(state, identifiers):
            await _shorten_unbeaten_claims(state, identifiers)
            continue
        payload = ProcessDocument(document_id=document.id, generation=document.generation)
        # A result kept from an earlier run (one arq recorded as failed, say) would make arq
        # refuse the job id; the document is unfinished, so that result is stale.
        await state.redis.delete(result_key_prefix + job_id(JobName.DOCUMENT_PROCESS, payload))
        if await enqueue(state.redis, JobName.DOCUMENT_PROCESS, payload) is not None:
            logger.warning(
                "document %s was %s with no job in Redis: queued again",
                document.id,
                document.status.value,
            )
            queued += 1
    return queued


async def keep_recovering(state: WorkerState) -> None:
    """`requeue_stranded` every half `recovery_after_seconds`, for the worker's lifetime.
    Every worker runs it; the job id of a document's run is fixed, so it is queued once."""
    while True:
        await asyncio.sleep(state.settings.recovery_after_seconds / 2)
        try:
            await requeue_stranded(state)
        except Exception:
            logger.warning("could not look for stranded documents; will try again", exc_info=True)
