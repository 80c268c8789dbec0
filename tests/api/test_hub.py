"""The progress hub against a real Redis: snapshots for late joiners, seq order, one shared
Pub/Sub connection, bounded buffers for slow subscribers, cleanup on every exit path, and
recovery of a terminal event published while the Pub/Sub connection was down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import pytest
from redis.asyncio import Redis

from lexintel_api.hub import ProgressHub
from lexintel_core import keys
from lexintel_core.progress import ProgressEvent, Stage, publish_progress
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus

S = ProcessingStatus
BUFFER_SIZE = 16


@pytest.fixture
async def hub(settings: Settings, redis: Redis) -> AsyncIterator[ProgressHub]:
    hub = ProgressHub(settings.redis_url, buffer_size=BUFFER_SIZE)
    await hub.start()
    yield hub
    await hub.aclose()


def _event(
    document_id: UUID, case_id: UUID, status: ProcessingStatus, percent: float = 0.0
) -> ProgressEvent:
    stage = {
        S.QUEUED: Stage.QUEUED,
        S.EXTRACTING: Stage.EXTRACT,
        S.CHUNKING: Stage.CHUNK,
        S.EMBEDDING: Stage.EMBED,
    }.get(status, Stage.DONE)
    return ProgressEvent(
        document_id=document_id, case_id=case_id, stage=stage, status=status, percent=percent
    )


class Doc:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.document_id = uuid.uuid4()
        self.case_id = uuid.uuid4()

    async def publish(
        self, status: ProcessingStatus, percent: float = 0.0, *, restart: bool = False
    ) -> ProgressEvent:
        published = await publish_progress(
            self.redis, _event(self.document_id, self.case_id, status, percent), restart=restart
        )
        assert published is not None
        return published


async def _next(events: AsyncIterator[ProgressEvent]) -> ProgressEvent:
    return await anext(events)


async def _collect(events: AsyncIterator[ProgressEvent]) -> list[ProgressEvent]:
    return [event async for event in events]


async def _until(condition: Callable[[], bool | Awaitable[bool]]) -> None:
    async with asyncio.timeout(5):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


async def _our_channels(redis: Redis) -> list[bytes]:
    channels: list[bytes] = await redis.pubsub_channels(f"{keys.PREFIX}*")
    return channels


def _assert_clean(hub: ProgressHub) -> None:
    assert hub.subscriber_count == 0
    assert hub.channel_count == 0


async def test_late_joiner_gets_the_snapshot_at_once(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    await doc.publish(S.EXTRACTING, 10)
    published = await doc.publish(S.CHUNKING, 40)
    async with contextlib.aclosing(hub.watch_document(doc.document_id)) as events:
        async with asyncio.timeout(2):
            first = await anext(events)
        assert first == published
        assert hub.subscriber_count == 1
    _assert_clean(hub)


async def test_joiner_after_completion_gets_terminal_snapshot_and_ends(
    hub: ProgressHub, redis: Redis
) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    terminal = await doc.publish(S.FAILED)
    async with asyncio.timeout(2):
        received = await _collect(hub.watch_document(doc.document_id))
    assert received == [terminal]
    _assert_clean(hub)


async def test_events_in_seq_order_and_completion_after_terminal(
    hub: ProgressHub, redis: Redis
) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    events = hub.watch_document(doc.document_id)
    async with asyncio.timeout(5):
        assert (await anext(events)).seq == 1
        task = asyncio.create_task(_collect(events))
        published = [await doc.publish(S.EXTRACTING, p) for p in range(0, 100, 10)]
        published.append(await doc.publish(S.READY, 100))
        # A reprocess after the end is not part of this stream.
        await doc.publish(S.QUEUED, restart=True)
        received = await task
    assert received == published
    assert [event.seq for event in received] == list(range(2, 13))
    _assert_clean(hub)


async def test_after_seq_skips_older_events(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    current = await doc.publish(S.EXTRACTING, 5)
    async with contextlib.aclosing(hub.watch_document(doc.document_id, after_seq=2)) as events:
        task = asyncio.create_task(_next(events))
        await _until(lambda: hub.subscriber_count == 1)
        async with asyncio.timeout(2):
            # The snapshot (seq 2) is not newer than after_seq: the next event is seq 3.
            newer = await doc.publish(S.EXTRACTING, 50)
            assert await task == newer
    assert current.seq == 2
    async with asyncio.timeout(2):
        # A client that already saw the terminal event gets nothing and is done.
        terminal = await doc.publish(S.READY, 100)
        assert await _collect(hub.watch_document(doc.document_id, after_seq=terminal.seq)) == []
    _assert_clean(hub)


async def test_many_subscribers_share_one_pubsub_connection(hub: ProgressHub, redis: Redis) -> None:
    docs = [Doc(redis) for _ in range(20)]
    for doc in docs:
        await doc.publish(S.QUEUED)
    started = 0

    async def subscriber(doc: Doc) -> list[ProgressEvent]:
        nonlocal started
        received = []
        async for event in hub.watch_document(doc.document_id):
            received.append(event)
            if len(received) == 1:
                started += 1
        return received

    async with asyncio.timeout(10):
        tasks = [asyncio.create_task(subscriber(doc)) for doc in docs for _ in range(10)]
        await _until(lambda: started == 200)
        assert hub.subscriber_count == 200
        assert hub.channel_count == 20
        clients = await redis.client_list()
        subscribed = [
            client
            for client in clients
            if any(int(client.get(field) or 0) > 0 for field in ("sub", "psub", "ssub"))
        ]
        assert len(subscribed) == 1, subscribed
        assert int(subscribed[0]["sub"]) == 20
        assert len(await _our_channels(redis)) == 20

        terminals = [await doc.publish(S.READY, 100) for doc in docs]
        results = await asyncio.gather(*tasks)
    for index, received in enumerate(results):
        doc_index = index // 10
        assert [event.seq for event in received] == [1, 2]
        assert received[-1] == terminals[doc_index]
    _assert_clean(hub)
    await _until(lambda: _no_channels(redis))


async def _no_channels(redis: Redis) -> bool:
    return not await _our_channels(redis)


def _has_channels(redis: Redis, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await _our_channels(redis)) == count

    return check


async def test_slow_subscriber_only_delays_itself(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    slow = hub.watch_document(doc.document_id)
    fast = hub.watch_document(doc.document_id)
    async with asyncio.timeout(10):
        assert (await anext(slow)).seq == 1
        assert (await anext(fast)).seq == 1
        fast_task = asyncio.create_task(_collect(fast))
        for i in range(1000):
            await doc.publish(S.EMBEDDING, i / 10)
        terminal = await doc.publish(S.READY, 100)
        fast_received = await fast_task
        slow_received = await _collect(slow)
    assert [event.seq for event in fast_received] == list(range(2, 1003))
    assert slow_received[-1] == terminal
    assert len(slow_received) <= BUFFER_SIZE + 2
    seqs = [event.seq for event in slow_received]
    assert seqs == sorted(seqs)
    # It kept the newest progress, not the oldest.
    assert seqs[0] > 1000 - BUFFER_SIZE - 2
    _assert_clean(hub)


async def test_a_waiting_subscriber_holds_no_event(hub: ProgressHub, redis: Redis) -> None:
    """A subscriber waits for hours between events: the hub must not keep the last one
    (nor the snapshot) alive meanwhile."""
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    events = hub.watch_document(doc.document_id)
    async with asyncio.timeout(10):
        sent = [await anext(events)]  # the snapshot
        waiting = asyncio.create_task(anext(events))
        await _until(lambda: hub.subscriber_count == 1)
        await asyncio.sleep(0.05)  # waiting for the next event
        await doc.publish(S.EXTRACTING)
        sent.append(await waiting)
        waiting = asyncio.create_task(anext(events))
        await asyncio.sleep(0.05)
    for event in sent:
        assert events not in gc.get_referrers(event)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await events.aclose()
    _assert_clean(hub)


async def test_cleanup_when_consumer_breaks_out_early(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    async with asyncio.timeout(2):
        async with contextlib.aclosing(hub.watch_document(doc.document_id)) as events:
            async for _event in events:
                assert hub.subscriber_count == 1
                break
        _assert_clean(hub)
        await _until(lambda: _no_channels(redis))


async def test_cleanup_when_consumer_is_cancelled(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in hub.watch_document(doc.document_id):
            first.set()

    async with asyncio.timeout(2):
        task = asyncio.create_task(consume())
        await first.wait()
        assert hub.subscriber_count == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _assert_clean(hub)
        await _until(lambda: _no_channels(redis))


async def test_cleanup_when_consumer_raises(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)

    async def consume() -> None:
        async with asyncio.timeout(2):
            async with contextlib.aclosing(hub.watch_document(doc.document_id)) as events:
                async for _event in events:
                    raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await consume()
    _assert_clean(hub)


async def test_hub_close_ends_pending_subscribers(settings: Settings, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    hub = ProgressHub(settings.redis_url)
    await hub.start()
    events = hub.watch_document(doc.document_id)
    async with asyncio.timeout(2):
        assert (await anext(events)).seq == 1
        task = asyncio.create_task(_collect(events))
        await asyncio.sleep(0.05)
        await hub.aclose()
        assert await task == []
    _assert_clean(hub)


async def test_terminal_event_survives_a_redis_drop(hub: ProgressHub, redis: Redis) -> None:
    doc = Doc(redis)
    await doc.publish(S.QUEUED)
    events = hub.watch_document(doc.document_id)
    async with asyncio.timeout(10):
        assert (await anext(events)).seq == 1
        task = asyncio.create_task(_collect(events))
        killed = await redis.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "KILL", "TYPE", "pubsub"
        )
        assert int(killed) >= 1
        # Published while the hub has no subscription: only the snapshot keeps it.
        terminal = await doc.publish(S.READY, 100)
        received = await task
    assert received == [terminal]
    assert hub.reconnects >= 1
    _assert_clean(hub)


async def test_watch_case_sees_every_document_of_the_case(hub: ProgressHub, redis: Redis) -> None:
    first, second = Doc(redis), Doc(redis)
    second.case_id = first.case_id
    received: list[ProgressEvent] = []
    async with contextlib.aclosing(hub.watch_case(first.case_id)) as events:
        task = asyncio.create_task(_next(events))
        # The case watcher has no snapshot to wait for: wait until Redis has it subscribed.
        await _until(_has_channels(redis, 1))
        async with asyncio.timeout(2):
            a = await first.publish(S.QUEUED)
            b = await second.publish(S.QUEUED)
            c = await first.publish(S.READY, 100)
            received.append(await task)
            received.append(await anext(events))
            received.append(await anext(events))
    assert received == [a, b, c]
    _assert_clean(hub)
