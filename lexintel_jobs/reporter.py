"""Publishes a document's progress, throttled, and never lets a publish failure fail a job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from uuid import UUID

from redis.asyncio import Redis

from lexintel_core.progress import ProgressEvent, Stage, publish_progress
from lexintel_core.status import ProcessingStatus

logger = logging.getLogger("lexintel.jobs.progress")


class ProgressReporter:
    def __init__(
        self,
        redis: Redis,
        document_id: UUID,
        case_id: UUID,
        *,
        min_interval: float = 0.25,
        allowed: Callable[[], bool] = lambda: True,
    ) -> None:
        self._redis = redis
        # False once the run lost the document's lease: a stale run publishes nothing.
        self._allowed = allowed
        self._document_id = document_id
        self._case_id = case_id
        self._min_interval = min_interval
        self._last_sent = 0.0
        self._last_stage: Stage | None = None

    async def report(self, status: ProcessingStatus, percent: float, message: str = "") -> None:
        """Publish now if the stage changed, the status is terminal, or enough time passed
        since the last event; otherwise drop this intermediate step (a 1,000-page file must
        not flood Redis)."""
        if not self._allowed():
            return
        urgent = Stage.of(status) != self._last_stage or status.is_terminal
        if not urgent and time.monotonic() - self._last_sent < self._min_interval:
            return
        await self.publish(
            ProgressEvent.of(
                self._document_id, self._case_id, status, percent=percent, message=message
            )
        )

    async def publish(self, event: ProgressEvent) -> None:
        """Publish `event` now, unthrottled (a run's end, a requeue); a failure is logged."""
        if not self._allowed():
            return
        try:
            await publish_progress(self._redis, event)
        except Exception:
            logger.warning("could not publish progress (the job goes on)", exc_info=True)
            return
        self._last_sent = time.monotonic()
        self._last_stage = event.stage
