from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from lexintel_core import keys
from lexintel_core.progress import ProgressEvent, Stage, publish_progress, read_snapshot
from lexintel_core.status import ProcessingStatus


def _event(
    document_id: uuid.UUID, case_id: uuid.UUID, percent: float, **fields: object
) -> ProgressEvent:
    values: dict[str, object] = {
        "document_id": document_id,
        "case_id": case_id,
        "stage": Stage.EXTRACT,
        "status": ProcessingStatus.EXTRACTING,
        "percent": percent,
        "message": f"page {int(percent)} of 100",
    }
    values.update(fields)
    return ProgressEvent.model_validate(values)


def test_event_json_round_trips_and_is_small() -> None:
    event = _event(uuid.uuid4(), uuid.uuid4(), 42.5).model_copy(update={"seq": 17})
    wire = event.to_json()
    assert len(wire.encode()) < 512
    assert ProgressEvent.from_json(wire) == event
    assert not event.is_terminal
    failed = _event(
        uuid.uuid4(), uuid.uuid4(), 10, status=ProcessingStatus.FAILED, error_code="pdf_corrupt"
    )
    assert failed.is_terminal


async def _publish(redis: Redis, event: ProgressEvent, *, restart: bool = False) -> ProgressEvent:
    published = await publish_progress(redis, event, restart=restart)
    assert published is not None
    return published


async def test_publish_assigns_increasing_seq_and_stores_the_snapshot(redis: Redis) -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    assert await read_snapshot(redis, document_id) is None
    published = [await _publish(redis, _event(document_id, case_id, p)) for p in (0, 50, 100)]
    assert [event.seq for event in published] == [1, 2, 3]
    assert await read_snapshot(redis, document_id) == published[-1]
    assert await redis.ttl(keys.progress_snapshot_key(document_id)) > 0


async def test_subscribers_of_document_and_case_channels_receive_events(redis: Redis) -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.document_channel(document_id), keys.case_channel(case_id))
    for _ in range(2):  # subscribe confirmations
        await pubsub.get_message(timeout=1)

    done = _event(
        document_id, case_id, 100, stage=Stage.DONE, status=ProcessingStatus.READY, message="ready"
    )
    published = await _publish(redis, done)

    received: dict[str, ProgressEvent] = {}
    async with asyncio.timeout(5):
        while len(received) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                received[message["channel"].decode()] = ProgressEvent.from_json(message["data"])
    await pubsub.aclose()  # type: ignore[no-untyped-call]

    assert received[keys.document_channel(document_id)] == published
    assert received[keys.case_channel(case_id)] == published
    assert published.is_terminal


async def test_concurrent_publishers_never_reuse_a_seq(redis: Redis) -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    results = await asyncio.gather(
        *(_publish(redis, _event(document_id, case_id, i)) for i in range(50))
    )
    assert sorted(event.seq for event in results) == list(range(1, 51))
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert snapshot.seq == 50


async def test_a_terminal_snapshot_is_only_replaced_by_a_restart(redis: Redis) -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    cancelled = _event(
        document_id, case_id, 100, stage=Stage.DONE, status=ProcessingStatus.CANCELLED
    )
    await _publish(redis, cancelled)
    # A worker's late progress report after the API announced the cancellation is dropped.
    assert await publish_progress(redis, _event(document_id, case_id, 40)) is None
    snapshot = await read_snapshot(redis, document_id)
    assert snapshot is not None
    assert snapshot.status is ProcessingStatus.CANCELLED
    # Reprocessing queues the document again.
    queued = _event(document_id, case_id, 0, stage=Stage.QUEUED, status=ProcessingStatus.QUEUED)
    again = await _publish(redis, queued, restart=True)
    assert again.seq == snapshot.seq + 1
    assert await read_snapshot(redis, document_id) == again


def test_every_status_has_a_stage_and_every_terminal_one_is_done() -> None:
    assert [Stage.of(status) for status in ProcessingStatus] == [
        Stage.QUEUED,
        Stage.EXTRACT,
        Stage.CHUNK,
        Stage.EMBED,
        Stage.DONE,
        Stage.DONE,
        Stage.DONE,
    ]


def test_an_event_of_a_status_derives_its_stage_percent_and_message() -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    queued = ProgressEvent.of(document_id, case_id, ProcessingStatus.QUEUED)
    assert (queued.stage, queued.percent, queued.message, queued.is_terminal) == (
        Stage.QUEUED,
        0.0,
        "queued",
        False,
    )
    failed = ProgressEvent.of(
        document_id, case_id, ProcessingStatus.FAILED, error_code="no_text", error_message=""
    )
    assert (failed.stage, failed.percent, failed.message, failed.is_terminal) == (
        Stage.DONE,
        100.0,
        "failed",
        True,
    )
    assert (failed.error_code, failed.error_message) == ("no_text", None)


def test_an_event_clamps_its_percent_and_cuts_its_texts_to_fit() -> None:
    document_id, case_id = uuid.uuid4(), uuid.uuid4()
    extracting = ProcessingStatus.EXTRACTING
    assert ProgressEvent.of(document_id, case_id, extracting, percent=33.333).percent == 33.3
    assert ProgressEvent.of(document_id, case_id, extracting, percent=140).percent == 100.0
    assert ProgressEvent.of(document_id, case_id, extracting, percent=-5).percent == 0.0
    long = ProgressEvent.of(
        document_id, case_id, ProcessingStatus.FAILED, message="m" * 500, error_message="e" * 500
    )
    assert (long.message, long.error_message) == ("m" * 200, "e" * 300)
    assert ProgressEvent.of(document_id, case_id, extracting, message="").message == ""
