"""The API's progress hub: one Redis Pub/Sub connection per process, fanned out to subscribers.

A subscriber registers first (its channel is subscribed, and the subscription confirmed by
Redis), then reads the stored snapshot and yields it, then yields only events with a higher
`seq`; a document subscription completes after the terminal event. Each subscriber has a
small bounded buffer, so a slow one only delays itself: when the buffer is full the oldest
non-terminal event is dropped, a terminal event never is. When Redis drops, the hub
reconnects with the shared Redis backoff (`connections.REDIS_BACKOFF`), resubscribes, and
re-reads the snapshot of every watched document so no subscriber misses a terminal state.

A connection can also die silently (a host gone, packets dropped: no reset, no error, just
nothing). So the hub PINGs its Pub/Sub connection after `health_check_interval` without a
message and replaces it when no reply comes within `reply_timeout`; every reconnect attempt
has a deadline too (twice `connect_timeout`), so a connection is re-established within about
`2 * connect_timeout` plus the backoff's cap (1 s) of Redis being reachable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lexintel_core import keys
from lexintel_core.connections import REDIS_BACKOFF, socket_options
from lexintel_core.progress import ProgressEvent, read_snapshot
from lexintel_core.settings import Settings

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_READ_TIMEOUT = 1.0


class _Buffer:
    """Bounded per-subscriber queue: keeps the newest progress, never drops a terminal event.

    One per live subscription, so it is kept small: slots, a list (at most `size` items)
    rather than a deque (which allocates a 64-slot block up front), and a future only while
    its consumer waits rather than an asyncio.Event.
    """

    __slots__ = ("_items", "_size", "_waiter", "closed", "dropped")

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._items: list[ProgressEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.dropped = 0

    def put(self, event: ProgressEvent) -> None:
        if len(self._items) >= self._size:
            for index, old in enumerate(self._items):
                if not old.is_terminal:
                    del self._items[index]
                    self.dropped += 1
                    break
        self._items.append(event)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> ProgressEvent | None:
        """The next event, or None once the buffer is closed and drained."""
        while not self._items:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Channel:
    __slots__ = ("confirmed", "document_id", "name", "subscribers")

    def __init__(self, name: str, document_id: UUID | None) -> None:
        self.name = name
        self.document_id = document_id  # None for case channels: no snapshot to re-read
        self.subscribers: set[_Buffer] = set()
        # Done once Redis has confirmed the SUBSCRIBE (a future: an asyncio.Event costs a
        # deque of waiters for every channel, for as long as it is watched).
        self.confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def confirm(self) -> None:
        if not self.confirmed.done():
            self.confirmed.set_result(None)


class ProgressHub:
    def __init__(
        self,
        redis_url: str,
        *,
        buffer_size: int = 16,
        health_check_interval: float = 2.0,
        reply_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        keepalive_seconds: int = 15,
    ) -> None:
        self._redis_url = redis_url
        self._buffer_size = buffer_size
        self._health_check_interval = health_check_interval
        self._reply_timeout = reply_timeout
        # A reconnect attempt: the TCP connect, then as long again for the handshake.
        self._reconnect_timeout = 2 * connect_timeout
        self._read_timeout = min(_READ_TIMEOUT, health_check_interval / 2, reply_timeout / 2)
        # No redis-py retries: the reader reconnects, and _read_snapshot retries, by itself
        # with REDIS_BACKOFF for as long as the hub runs. Replies are awaited within
        # asyncio.timeout(reply_timeout) (connections.py: why not redis-py's socket_timeout).
        self._options = socket_options(
            connect_timeout=connect_timeout,
            dead_after=reply_timeout,
            keepalive_seconds=keepalive_seconds,
        )
        self._client: Redis | None = None  # snapshots
        self._pubsub_client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # serializes (UN)SUBSCRIBE sends and pubsub swaps
        self._channels: dict[str, _Channel] = {}  # wanted: channels with >= 1 subscriber
        self._subscribed: set[str] = set()  # sent SUBSCRIBE on the current connection
        self._pending_acks: dict[str, int] = {}  # SUBSCRIBEs sent but not confirmed yet
        self._resync: set[str] = set()  # re-read the snapshot once confirmed (reconnect)
        self._reconnects = 0
        self._broken = False  # a (UN)SUBSCRIBE send failed: the reader must reconnect
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ProgressHub:
        return cls(
            settings.redis_url,
            health_check_interval=settings.redis_health_check_seconds,
            reply_timeout=settings.redis_timeout_seconds,
            connect_timeout=settings.redis_connect_timeout_seconds,
            keepalive_seconds=settings.redis_keepalive_seconds,
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._reader is not None:
            raise RuntimeError("ProgressHub already started")
        self._client = Redis.from_url(self._redis_url, **self._options)
        self._pubsub_client = Redis.from_url(self._redis_url, **self._options)
        self._pubsub = self._pubsub_client.pubsub()
        await self._pubsub.connect()
        self._reader = asyncio.create_task(self._run(), name="progress-hub-reader")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for channel in self._channels.values():
            channel.confirm()
            for buffer in channel.subscribers:
                buffer.close()
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(*_REDIS_ERRORS):
                    if self._subscribed:
                        async with asyncio.timeout(self._reply_timeout):
                            await self._pubsub.unsubscribe()
                with contextlib.suppress(*_REDIS_ERRORS):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._subscribed.clear()
        for client in (self._pubsub_client, self._client):
            if client is not None:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await client.aclose()

    # -- metrics -----------------------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        return sum(len(channel.subscribers) for channel in self._channels.values())

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    @property
    def reconnects(self) -> int:
        return self._reconnects

    # -- subscriptions -----------------------------------------------------------------

    def watch_document(
        self, document_id: UUID, *, after_seq: int = 0
    ) -> AsyncGenerator[ProgressEvent, None]:
        """Snapshot, then newer events of one document; ends after the terminal event."""
        return self._watch(keys.document_channel(document_id), document_id, after_seq)

    def watch_case(self, case_id: UUID) -> AsyncGenerator[ProgressEvent, None]:
        """Events of every document of a case, in per-document seq order; never ends by
        itself (only when the consumer stops or the hub closes)."""
        return self._watch(keys.case_channel(case_id), None, 0)

    async def _watch(
        self, name: str, document_id: UUID | None, after_seq: int
    ) -> AsyncGenerator[ProgressEvent, None]:
        if self._closed or self._reader is None or self._client is None:
            raise RuntimeError("ProgressHub is not running")
        buffer = _Buffer(self._buffer_size)
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name, document_id)
        channel.subscribers.add(buffer)
        try:
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._sync()  # on failure the reader reconnects and subscribes for us
            await asyncio.shield(channel.confirmed)
            if self._closed:
                return
            last_seq: dict[UUID, int] = {}
            if document_id is not None:
                last_seq[document_id] = after_seq
                snapshot = await self._read_snapshot(document_id)
                if snapshot is not None:
                    if snapshot.seq > after_seq:
                        last_seq[document_id] = snapshot.seq
                        yield snapshot
                    if snapshot.is_terminal:
                        return
                del snapshot
            # A subscriber waits for hours between events: no event is kept meanwhile.
            while True:
                event = await buffer.get()
                if event is None:
                    return
                if event.seq <= last_seq.get(event.document_id, 0):
                    continue
                last_seq[event.document_id] = event.seq
                ends = document_id is not None and event.is_terminal
                yield event
                del event
                if ends:
                    return
        finally:
            buffer.close()
            channel.subscribers.discard(buffer)
            if not channel.subscribers and self._channels.get(name) is channel:
                del self._channels[name]
            if not self._closed:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await self._sync()

    async def _read_snapshot(self, document_id: UUID) -> ProgressEvent | None:
        """The stored snapshot, waiting out a Redis outage (the hub is reconnecting)."""
        failures = 0
        while True:
            assert self._client is not None
            try:
                async with asyncio.timeout(self._reply_timeout):
                    return await read_snapshot(self._client, document_id)
            except _REDIS_ERRORS:  # TimeoutError is an OSError
                if self._closed:
                    return None
                failures += 1
                await asyncio.sleep(REDIS_BACKOFF.compute(failures))

    async def _sync(self) -> None:
        """Bring the connection's subscriptions in line with the wanted channels."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None or self._closed:
                return
            wanted = set(self._channels)
            add = sorted(wanted - self._subscribed)
            remove = sorted(self._subscribed - wanted)
            for name in wanted & self._subscribed:
                if not self._pending_acks.get(name):
                    self._channels[name].confirm()
            try:
                # A send may first reconnect (and wait on the handshake) while we hold the
                # lock the reader needs to replace the connection.
                async with asyncio.timeout(self._reply_timeout):
                    if remove:
                        self._subscribed.difference_update(remove)
                        await pubsub.unsubscribe(*remove)
                    if add:
                        self._subscribed.update(add)
                        for name in add:
                            self._pending_acks[name] = self._pending_acks.get(name, 0) + 1
                        await pubsub.subscribe(*add)
            except _REDIS_ERRORS:  # TimeoutError is an OSError
                # redis-py may reconnect this connection by itself and resubscribe behind
                # our back; have the reader replace it and resync instead.
                self._broken = True
                raise

    # -- reader ------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                await self._read_forever()
            except _REDIS_ERRORS as exc:
                logger.warning("progress hub lost its Redis Pub/Sub connection: %s", exc)
            lost, attempts = loop.time(), 0
            # The snapshot client's pooled connections likely went the same way; each would
            # cost a socket timeout once Redis is back (the resync reads through them).
            assert self._client is not None
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._client.connection_pool.disconnect()
            while not self._closed:
                attempts += 1
                await asyncio.sleep(REDIS_BACKOFF.compute(attempts))
                try:
                    # A reconnect into a network that drops packets would wait on TCP's
                    # own retransmission backoff: seconds, then tens of seconds.
                    async with asyncio.timeout(self._reconnect_timeout):
                        await self._reconnect()
                except _REDIS_ERRORS as exc:  # TimeoutError is an OSError
                    # Once per outage; the rest (about one a second) at DEBUG.
                    (logger.warning if attempts == 1 else logger.debug)(
                        "progress hub reconnect failed (retrying; further failures at DEBUG): %s",
                        exc or type(exc).__name__,
                    )
                    continue
                self._reconnects += 1
                logger.info(
                    "progress hub reconnected to Redis after %.1f s (%d attempts)",
                    loop.time() - lost,
                    attempts,
                )
                break

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()  # anything from Redis on this connection: a message, a PONG
        pinged: float | None = None
        while True:
            pubsub = self._pubsub
            assert pubsub is not None
            if self._broken:
                raise RedisConnectionError("a subscribe command failed on this connection")
            message = await pubsub.get_message(timeout=self._read_timeout)
            now = loop.time()
            if message is not None:
                heard, pinged = now, None
                await self._handle(message)
                # Let woken subscribers run before the next message: fast ones keep up.
                await asyncio.sleep(0)
            elif pinged is not None:
                if now - pinged > self._reply_timeout:
                    raise RedisTimeoutError(
                        f"no reply to a PING within {self._reply_timeout:g} s: the connection "
                        "died silently"
                    )
            elif now - heard >= self._health_check_interval:
                # The reply ("pong") comes back through get_message like any message.
                async with self._lock:
                    await pubsub.ping()
                pinged = now

    async def _reconnect(self) -> None:
        assert self._pubsub_client is not None
        async with self._lock:
            old = self._pubsub
            self._pubsub = None
            self._broken = False
            self._subscribed.clear()
            self._pending_acks.clear()
            if old is not None:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await old.aclose()  # type: ignore[no-untyped-call]
            pubsub = self._pubsub_client.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
            except BaseException:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            self._pubsub = pubsub
            # Events published while we were away are lost: re-read every snapshot once
            # the new subscription is confirmed.
            self._resync = {
                name for name, channel in self._channels.items() if channel.document_id is not None
            }
        await self._sync()

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw_name = message.get("channel")
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        if kind == "subscribe":
            pending = self._pending_acks.get(name, 0) - 1
            if pending > 0:
                self._pending_acks[name] = pending
                return
            self._pending_acks.pop(name, None)
            channel = self._channels.get(name)
            if channel is None:
                return
            channel.confirm()
            if name in self._resync and channel.document_id is not None:
                self._resync.discard(name)
                assert self._client is not None
                async with asyncio.timeout(self._reply_timeout):
                    snapshot = await read_snapshot(self._client, channel.document_id)
                if snapshot is not None:
                    self._deliver(name, snapshot)
            return
        if kind != "message":
            return
        try:
            event = ProgressEvent.from_json(message["data"])
        except (ValidationError, ValueError):
            logger.warning("ignoring a malformed progress event on %s", name)
            return
        self._deliver(name, event)

    def _deliver(self, name: str, event: ProgressEvent) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        for buffer in channel.subscribers:
            buffer.put(event)
