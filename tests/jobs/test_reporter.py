from __future__ import annotations

import uuid

from redis.asyncio import Redis

from lexintel_core.progress import ProgressEvent, read_snapshot
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.reporter import ProgressReporter


async def test_intermediate_steps_are_throttled_but_stage_changes_and_the_end_are_not(
    redis: Redis,
) -> None:
    document_id = uuid.uuid4()
    reporter = ProgressReporter(redis, document_id, uuid.uuid4(), min_interval=60)
    await reporter.report(ProcessingStatus.EXTRACTING, 0, "start")
    for page in range(1, 1001):  # a 1,000-page file
        await reporter.report(ProcessingStatus.EXTRACTING, page / 10, f"page {page}")
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert (snapshot.seq, snapshot.message) == (1, "start")

    await reporter.report(ProcessingStatus.EMBEDDING, 0, "embedding")
    await reporter.report(ProcessingStatus.READY, 100, "ready")
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert (snapshot.seq, snapshot.status) == (3, ProcessingStatus.READY)


async def test_a_failed_publish_does_not_raise(redis: Redis) -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    reporter = ProgressReporter(broken, uuid.uuid4(), uuid.uuid4())
    await reporter.report(ProcessingStatus.READY, 100)  # logged, not raised
    await broken.aclose()


async def test_publish_is_unthrottled_and_a_run_without_its_lease_publishes_nothing(
    redis: Redis,
) -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    holds_lease = True
    reporter = ProgressReporter(
        redis, document_id, case_id, min_interval=60, allowed=lambda: holds_lease
    )
    await reporter.report(ProcessingStatus.QUEUED, 0, "start")
    await reporter.publish(ProgressEvent.of(document_id, case_id, ProcessingStatus.QUEUED))
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert (snapshot.seq, snapshot.message) == (2, "queued")

    holds_lease = False
    await reporter.report(ProcessingStatus.FAILED, 100)
    await reporter.publish(ProgressEvent.of(document_id, case_id, ProcessingStatus.FAILED))
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert snapshot.seq == 2
