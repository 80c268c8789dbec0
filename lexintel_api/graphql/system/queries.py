"""Queue and worker statistics, for dashboards and operators."""

from __future__ import annotations

import strawberry
from arq.constants import in_progress_key_prefix

from lexintel_api.graphql.context import Context
from lexintel_core import keys


@strawberry.type
class QueueStats:
    queued: int = strawberry.field(description="Jobs waiting (including retries in backoff).")
    in_progress: int = strawberry.field(description="Jobs a worker holds right now.")
    workers_alive: int = strawberry.field(description="Workers whose heartbeat is fresh.")
    workers_with_ocr: int = strawberry.field(
        description="Live workers that can OCR scanned pages (Tesseract installed, OCR on). "
        "Documents that need OCR fail with ocr_unavailable on the others."
    )


async def _count(context: Context, pattern: str) -> int:
    count = 0
    async for _ in context.services.redis.scan_iter(match=pattern, count=1000):
        count += 1
    return count


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
        info.context.require_principal()
        redis = info.context.services.redis
        workers = await _workers(info.context)
        return QueueStats(
            queued=await redis.zcard(keys.QUEUE_NAME),
            in_progress=await _count(info.context, f"{in_progress_key_prefix}*"),
            workers_alive=len(workers),
            workers_with_ocr=sum(worker.ocr for worker in workers),
        )
