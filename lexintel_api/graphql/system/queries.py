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


async def _count(context: Context, pattern: str) -> int:
    count = 0
    async for _ in context.services.redis.scan_iter(match=pattern, count=1000):
        count += 1
    return count


@strawberry.type
class SystemQueries:
    @strawberry.field
    async def queue_stats(self, info: strawberry.Info[Context, None]) -> QueueStats:
        info.context.require_principal()
        redis = info.context.services.redis
        return QueueStats(
            queued=await redis.zcard(keys.QUEUE_NAME),
            in_progress=await _count(info.context, f"{in_progress_key_prefix}*"),
            workers_alive=await _count(info.context, keys.worker_key("*")),
        )
