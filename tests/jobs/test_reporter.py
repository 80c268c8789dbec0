from __future__ import annotations

import uuid

from redis.asyncio import Redis

from lexintel_core.progress import Stage, read_snapshot
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.reporter import ProgressReporter

S = ProcessingStatus


async def test_intermediate_steps_are_throttled_but_stage_changes_and_the_end_are_not(
    redis: Redis,
) -> None:
    document_id = uuid.uuid4()
    reporter = ProgressReporter(redis, document_id, uuid.uuid4(), min_interval=60)
    await reporter.report(Stage.EXTRACT, S.EXTRACTING, 0, "start")
    for page in range(1, 1001):  # a 1,000-page file
        await reporter.report(Stage.EXTRACT, S.EXTRACTING, page / 10, f"page {page}")
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert (snapshot.seq, snapshot.message) == (1, "start")

    await reporter.report(Stage.EMBED, S.EMBEDDING, 0, "embedding")
    await reporter.report(Stage.DONE, S.READY, 100, "ready")
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert (snapshot.seq, snapshot.status) == (3, S.READY)


async def test_a_failed_publish_does_not_raise(redis: Redis) -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    reporter = ProgressReporter(broken, uuid.uuid4(), uuid.uuid4())
    await reporter.report(Stage.DONE, S.READY, 100)  # logged, not raised
    await broken.aclose()
