"""Document processing statuses and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum

from lexintel_core.errors import IllegalTransition


class ProcessingStatus(StrEnum):
    QUEUED = "QUEUED"
    EXTRACTING = "EXTRACTING"
    CHUNKING = "CHUNKING"
    EMBEDDING = "EMBEDDING"
    READY = "READY"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {ProcessingStatus.READY, ProcessingStatus.FAILED, ProcessingStatus.CANCELLED}
)

# Running stages may restart at EXTRACTING or repeat themselves: delivery is at-least-once,
# so a job taken over from a killed worker finds the document where that worker left it.
# Terminal statuses only go back to QUEUED (reprocessing).
ALLOWED_TRANSITIONS: dict[ProcessingStatus, frozenset[ProcessingStatus]] = {
    ProcessingStatus.QUEUED: frozenset(
        {
            ProcessingStatus.EXTRACTING,
            ProcessingStatus.EMBEDDING,
            ProcessingStatus.FAILED,
            ProcessingStatus.CANCELLED,
        }
    ),
    ProcessingStatus.EXTRACTING: frozenset(
        {
            ProcessingStatus.EXTRACTING,
            ProcessingStatus.CHUNKING,
            ProcessingStatus.QUEUED,
            ProcessingStatus.FAILED,
            ProcessingStatus.CANCELLED,
        }
    ),
    ProcessingStatus.CHUNKING: frozenset(
        {
            ProcessingStatus.EXTRACTING,
            ProcessingStatus.CHUNKING,
            ProcessingStatus.EMBEDDING,
            ProcessingStatus.QUEUED,
            ProcessingStatus.FAILED,
            ProcessingStatus.CANCELLED,
        }
    ),
    ProcessingStatus.EMBEDDING: frozenset(
        {
            ProcessingStatus.EXTRACTING,
            ProcessingStatus.EMBEDDING,
            ProcessingStatus.READY,
            ProcessingStatus.QUEUED,
            ProcessingStatus.FAILED,
            ProcessingStatus.CANCELLED,
        }
    ),
    ProcessingStatus.READY: frozenset({ProcessingStatus.QUEUED}),
    ProcessingStatus.FAILED: frozenset({ProcessingStatus.QUEUED}),
    ProcessingStatus.CANCELLED: frozenset({ProcessingStatus.QUEUED}),
}


def can_transition(current: ProcessingStatus, new: ProcessingStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def ensure_transition(current: ProcessingStatus, new: ProcessingStatus) -> None:
    """Raise `IllegalTransition` unless `current -> new` is allowed."""
    if not can_transition(current, new):
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "nothing"
        raise IllegalTransition(
            f"a document cannot go from {current} to {new} (allowed from {current}: {allowed})"
        )
