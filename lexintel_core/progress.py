"""The progress contract between workers (publishers) and the API (subscribers).

A worker calls `publish_progress`; one Lua script assigns the next `seq` of the document,
stores the event as the document's snapshot and publishes it on the document and case
channels, so the snapshot always equals the last published event. JSON on the wire.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from lexintel_core import keys
from lexintel_core.models import utcnow
from lexintel_core.status import ProcessingStatus

# Snapshots and seq counters expire together, a week after a document's last event.
PROGRESS_TTL_SECONDS = 7 * 24 * 3600


class Stage(StrEnum):
    QUEUED = "queued"
    EXTRACT = "extract"
    CHUNK = "chunk"
    EMBED = "embed"
    DONE = "done"

    @classmethod
    def of(cls, status: ProcessingStatus) -> Stage:
        """The stage of a document in `status`: DONE once it is terminal."""
        return _STAGE_OF_STATUS[status]


_STAGE_OF_STATUS = {
    ProcessingStatus.QUEUED: Stage.QUEUED,
    ProcessingStatus.EXTRACTING: Stage.EXTRACT,
    ProcessingStatus.CHUNKING: Stage.CHUNK,
    ProcessingStatus.EMBEDDING: Stage.EMBED,
    ProcessingStatus.READY: Stage.DONE,
    ProcessingStatus.FAILED: Stage.DONE,
    ProcessingStatus.CANCELLED: Stage.DONE,
}


class ProgressEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: UUID
    case_id: UUID
    seq: int = Field(default=0, ge=0)  # assigned by `publish_progress`
    stage: Stage
    status: ProcessingStatus
    percent: float = Field(ge=0, le=100)
    message: str = Field(default="", max_length=200)
    error_code: str | None = None
    error_message: str | None = Field(default=None, max_length=300)
    timestamp: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(
        cls,
        document_id: UUID,
        case_id: UUID,
        status: ProcessingStatus,
        *,
        percent: float | None = None,
        message: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> ProgressEvent:
        """The event of a document in `status`, its stage derived from it (`Stage.of`).
        `percent` defaults to 100 for a terminal status and 0 otherwise, and is clamped to
        0-100; `message` defaults to the status in lower case. Texts are cut to fit."""
        if percent is None:
            percent = 100.0 if status.is_terminal else 0.0
        return cls(
            document_id=document_id,
            case_id=case_id,
            stage=Stage.of(status),
            status=status,
            percent=round(min(max(percent, 0.0), 100.0), 1),
            message=(status.value.lower() if message is None else message)[:200],
            error_code=error_code,
            error_message=error_message[:300] if error_message else None,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> ProgressEvent:
        return cls.model_validate_json(data)


# KEYS: seq counter, snapshot, document channel, case channel. ARGV: event JSON, ttl,
# restart flag. Without the flag an event never replaces a terminal snapshot: a worker's
# last progress report must not undo a cancellation the API already announced.
_PUBLISH_SCRIPT = """
local current = redis.call('GET', KEYS[2])
if current and ARGV[3] == '0' then
  local status = cjson.decode(current)['status']
  if status == 'READY' or status == 'FAILED' or status == 'CANCELLED' then
    return false
  end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local event = cjson.decode(ARGV[1])
event['seq'] = seq
local payload = cjson.encode(event)
redis.call('SET', KEYS[2], payload, 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[3], payload)
redis.call('PUBLISH', KEYS[4], payload)
return payload
"""


async def publish_progress(
    redis: Redis, event: ProgressEvent, *, restart: bool = False
) -> ProgressEvent | None:
    """Assign the next seq, store the snapshot and publish, atomically. Returns the event
    as published (with its seq), or None when the document's snapshot is terminal: only a
    `restart` (the API queueing the document again) may follow a terminal event."""
    payload: Any = await redis.eval(  # type: ignore[misc]
        _PUBLISH_SCRIPT,
        4,
        keys.progress_seq_key(event.document_id),
        keys.progress_snapshot_key(event.document_id),
        keys.document_channel(event.document_id),
        keys.case_channel(event.case_id),
        event.to_json(),
        str(PROGRESS_TTL_SECONDS),
        "1" if restart else "0",
    )
    return ProgressEvent.from_json(payload) if payload is not None else None


async def read_snapshot(redis: Redis, document_id: UUID) -> ProgressEvent | None:
    """The last published event of a document, or None if there is none (or it expired)."""
    payload = await redis.get(keys.progress_snapshot_key(document_id))
    return ProgressEvent.from_json(payload) if payload is not None else None
