"""Cancel flags: the API sets one, workers check it between pages and embedding batches.

A Redis flag (not arq's `Job.abort`, which has known bugs) is cheap enough to read often."""

from __future__ import annotations

from uuid import UUID

from redis.asyncio import Redis

from lexintel_core import keys

# Long enough to outlive any queued or running job of the document.
CANCEL_FLAG_TTL_SECONDS = 7 * 24 * 3600


async def request_cancel(redis: Redis, document_id: UUID) -> None:
    await redis.set(keys.cancel_flag_key(document_id), b"1", ex=CANCEL_FLAG_TTL_SECONDS)


async def clear_cancel(redis: Redis, document_id: UUID) -> None:
    """Called when a document is queued again (reprocessing)."""
    await redis.delete(keys.cancel_flag_key(document_id))


async def is_cancel_requested(redis: Redis, document_id: UUID) -> bool:
    return bool(await redis.exists(keys.cancel_flag_key(document_id)))
