"""Job contracts: names, one payload model per job, and the `enqueue` helper.

Core does not import arq. `enqueue` takes any queue with arq's `enqueue_job` shape; job
arguments are plain JSON-compatible dicts so workers can use a JSON serializer (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from lexintel_core.errors import InvalidInput


class JobName(StrEnum):
    DOCUMENT_PROCESS = "document.process"
    DOCUMENT_EXTRACT = "document.extract"
    DOCUMENT_EMBED = "document.embed"


class JobPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocumentJob(JobPayload):
    document_id: UUID
    # The document's generation when it was queued (bumped by reprocessing): a new run is
    # not mistaken for a duplicate of the last one, and a stale job leaves the document be.
    generation: int = 0


class ProcessDocument(DocumentJob):
    """Run the whole pipeline (extract, chunk, embed) for one document."""


class ExtractDocument(DocumentJob):
    """Re-run extraction and chunking for one document."""


class EmbedDocument(DocumentJob):
    """Re-embed the existing chunks of one document (e.g. after changing the model)."""


PAYLOADS: dict[JobName, type[JobPayload]] = {
    JobName.DOCUMENT_PROCESS: ProcessDocument,
    JobName.DOCUMENT_EXTRACT: ExtractDocument,
    JobName.DOCUMENT_EMBED: EmbedDocument,
}


class JobQueue(Protocol):
    """What `enqueue` needs: arq's `ArqRedis.enqueue_job`."""

    async def enqueue_job(
        self, function: str, *args: Any, _job_id: str | None = None, **kwargs: Any
    ) -> Any: ...


def json_dumps(value: Any) -> bytes:
    """arq's job serializer on both sides of the queue: JSON, never pickle."""
    return json.dumps(value, default=str).encode()


def json_loads(data: bytes) -> Any:
    return json.loads(data)


def validate_payload(name: JobName, payload: JobPayload | dict[str, Any]) -> JobPayload:
    """Check that `payload` is valid for job `name`; raise `InvalidInput` if not."""
    model = PAYLOADS[name]
    try:
        if isinstance(payload, BaseModel):
            if not isinstance(payload, model):
                raise InvalidInput(
                    f"job {name} takes {model.__name__}, not {type(payload).__name__}"
                )
            return payload
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(f"invalid payload for job {name}: {exc}") from exc


def job_id(name: JobName, payload: JobPayload) -> str:
    """Deterministic job id: the same job with the same payload is queued once."""
    digest = hashlib.sha256(payload.model_dump_json().encode()).hexdigest()[:32]
    return f"{name}:{digest}"


async def enqueue(
    queue: JobQueue, name: JobName, payload: JobPayload | dict[str, Any], **options: Any
) -> str | None:
    """Validate and enqueue a job. Returns its id, or None when the same job is already
    queued, running or recently finished (arq keeps the id until its result expires)."""
    model = validate_payload(name, payload)
    identifier = job_id(name, model)
    job = await queue.enqueue_job(
        str(name), model.model_dump(mode="json"), _job_id=identifier, **options
    )
    return identifier if job is not None else None
