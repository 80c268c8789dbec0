"""Every Redis key and Pub/Sub channel LexIntel uses, in one place."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ValidationError

PREFIX = "lexintel:"

# arq queue used by the API to enqueue and by workers to consume.
QUEUE_NAME = f"{PREFIX}queue"


def document_channel(document_id: UUID) -> str:
    """Pub/Sub channel carrying every ProgressEvent of one document."""
    return f"{PREFIX}progress:document:{document_id}"


def case_channel(case_id: UUID) -> str:
    """Pub/Sub channel carrying the ProgressEvents of every document of one case."""
    return f"{PREFIX}progress:case:{case_id}"


def progress_snapshot_key(document_id: UUID) -> str:
    """The latest ProgressEvent of a document (JSON), for subscribers that join late."""
    return f"{PREFIX}progress:snapshot:{document_id}"


def progress_seq_key(document_id: UUID) -> str:
    """Counter that hands out the monotonically increasing `seq` of a document's events."""
    return f"{PREFIX}progress:seq:{document_id}"


def cancel_flag_key(document_id: UUID) -> str:
    """Set when a document is cancelled; workers check it between pages and batches."""
    return f"{PREFIX}cancel:{document_id}"


def job_tries_key(job_id: str) -> str:
    """How many tries of one arq job have begun (lexintel_jobs.execution counts them: arq counts a
    try when it claims a job, even one a shutdown stops before any of its code runs)."""
    return f"{PREFIX}job-tries:{job_id}"


def upload_slots_key(organization_id: UUID) -> str:
    """Sorted set of an organization's uploads in flight (token -> expiry in ms), shared by
    every API process to bound them."""
    return f"{PREFIX}uploads:{organization_id}"


# Rate limits (requests per API key, failed authentications per client address): the
# `limits` package's counters, under this prefix.
LIMITS_PREFIX = f"{PREFIX}limits"


def live_subscriptions_key(scope: str, scope_id: UUID) -> str:
    """Sorted set of the live subscriptions of one organization or API key (`scope` is
    "organization" or "key"): lease id -> expiry (Unix time), renewed while they live."""
    return f"{PREFIX}subscriptions:{scope}:{scope_id}"


def worker_key(worker_id: str) -> str:
    """Heartbeat of one running worker (expires when the worker stops renewing it); its
    value is a WorkerInfo as JSON."""
    return f"{PREFIX}worker:{worker_id}"


class WorkerInfo(BaseModel):
    """What a live worker can do, in its heartbeat."""

    ocr: bool = False  # Tesseract and its languages are installed and OCR is not off

    @classmethod
    def parse(cls, value: bytes | str | None) -> WorkerInfo:
        try:
            return cls.model_validate_json(value or b"{}")
        except ValidationError:  # an older worker's b"1"
            return cls()
