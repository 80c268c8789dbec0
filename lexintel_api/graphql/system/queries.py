"""Queue and worker statistics, for dashboards and operators.

The queue is shared by every organization, so its numbers are counted from the caller's
own documents (their status), never from the queue itself: one tenant's activity is not
visible to another. Workers are shared too and reveal nothing about a tenant."""

from __future__ import annotations

import strawberry
from sqlalchemy import func, select

from lexintel_api.graphql.context import Context
from lexintel_core import keys
from lexintel_core.models import Case, Document
from lexintel_core.status import ProcessingStatus

_RUNNING = (ProcessingStatus.EXTRACTING, ProcessingStatus.CHUNKING, ProcessingStatus.EMBEDDING)


@strawberry.type
class QueueStats:
    queued: int = strawberry.field(
        description="Your organization's documents waiting for a worker (including retries "
        "in backoff)."
    )
    in_progress: int = strawberry.field(
        description="Your organization's documents a worker is processing right now."
    )
    workers_alive: int = strawberry.field(
        description="Workers whose heartbeat is fresh (shared by all organizations)."
    )
    workers_with_ocr: int = strawberry.field(
        description="Live workers that can OCR scanned pages (Tesseract installed, OCR on). "
        "Documents that need OCR fail with ocr_unavailable on the others."
    )


async def _workers(context: Context) -> list[keys.WorkerInfo]:
    redis = context.services.redis
    names = [name async for name in redis.scan_iter(match=keys.worker_key("*"), count=1000)]
    values = await redis.mget(names) if names else []
    # A key that expired between SCAN and MGET is a worker that just stopped.
    return [keys.WorkerInfo.parse(value) for value in values if value is not None]


@strawberry.type
class SystemQueries:
    @strawberry.field
    async def queue_stats(self, info: strawberry.Info[Context, None]) -> QueueStats:
        principal = info.context.require_principal()
        statement = (
            select(Document.status, func.count())
            .join(Case, Case.id == Document.case_id)
            .where(
                Case.organization_id == principal.organization_id,
                Document.status.in_((ProcessingStatus.QUEUED, *_RUNNING)),
            )
            .group_by(Document.status)
        )
        async with info.context.services.sessions() as session:
            counts = {row[0]: int(row[1]) for row in await session.execute(statement)}
        workers = await _workers(info.context)
        return QueueStats(
            queued=counts.get(ProcessingStatus.QUEUED, 0),
            in_progress=sum(counts.get(status, 0) for status in _RUNNING),
            workers_alive=len(workers),
            workers_with_ocr=sum(worker.ocr for worker in workers),
        )
