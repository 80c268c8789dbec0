"""Revoked API keys stop working on connections opened before the revoke, too.

HTTP requests look their key up each time; a WebSocket, an SSE stream or a stream token was
authenticated once, so each of them asks `KeyWatch` again: before every WebSocket operation
and periodically while a socket or stream is open. A revoked key is cut off within
`LEXINTEL_API_KEY_RECHECK_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

from sqlalchemy import select

from lexintel_core.connections import is_connection_failure
from lexintel_core.db import SessionFactory
from lexintel_core.models import ApiKey

T = TypeVar("T")

logger = logging.getLogger(__name__)


class KeyWatch:
    """Whether API keys are still active, read from the database at most once per half
    recheck period per key, however many sockets and streams use it: concurrent checks of
    a key share one read, and one task per watched key polls it for all of its watchers."""

    def __init__(self, sessions: SessionFactory, recheck_seconds: float) -> None:
        self._sessions = sessions
        # Keys are polled every half period and an answer is reused for as long, so a
        # revoke is seen at most two halves later.
        self.poll_seconds = recheck_seconds / 2
        # One entry per key used on this process since it started: no eviction needed.
        self._checked: dict[uuid.UUID, tuple[float, bool]] = {}
        self._reads: dict[uuid.UUID, asyncio.Future[bool]] = {}
        self._watchers: dict[uuid.UUID, set[Callable[[], object]]] = {}
        self._polls: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def is_active(self, key_id: uuid.UUID) -> bool:
        checked = self._checked.get(key_id)
        if checked is not None and time.monotonic() - checked[0] < self.poll_seconds:
            return checked[1]
        read = self._reads.get(key_id)
        if read is None:  # else thousands of sockets would each ask the database at once
            read = self._reads[key_id] = asyncio.ensure_future(self._read(key_id))
            read.add_done_callback(lambda _: self._reads.pop(key_id, None))
        return await asyncio.shield(read)

    async def _read(self, key_id: uuid.UUID) -> bool:
        now = time.monotonic()
        try:
            async with self._sessions() as session:
                found = await session.scalar(
                    select(ApiKey.id).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                )
        except Exception as exc:
            if not is_connection_failure(exc):
                raise
            # The key was valid when the connection was authenticated: an outage of the
            # database does not cut everyone off; the check is repeated once it is back.
            logger.warning("cannot re-check API key %s: %s", key_id, exc)
            checked = self._checked.get(key_id)
            return checked[1] if checked is not None else True
        self._checked[key_id] = (now, found is not None)
        return found is not None

    def watch(self, key_id: uuid.UUID, callback: Callable[[], object]) -> None:
        """Call `callback` (from the event loop, once) when the key is found revoked, unless
        `unwatch`ed first. A connection costs a set entry here, not a task of its own."""
        watchers = self._watchers.setdefault(key_id, set())
        watchers.add(callback)
        if key_id not in self._polls:
            self._polls[key_id] = asyncio.create_task(self._poll(key_id))

    def unwatch(self, key_id: uuid.UUID, callback: Callable[[], object]) -> None:
        watchers = self._watchers.get(key_id)
        if watchers is None:
            return
        watchers.discard(callback)
        if not watchers:
            del self._watchers[key_id]
            self._polls.pop(key_id).cancel()

    async def _poll(self, key_id: uuid.UUID) -> None:
        while True:
            try:
                if not await self.is_active(key_id):
                    break
            except Exception:  # tried again at the next poll
                logger.exception("cannot re-check API key %s", key_id)
            await asyncio.sleep(self.poll_seconds)
        del self._polls[key_id]
        for callback in self._watchers.pop(key_id, set()):
            callback()

    async def revoked(self, key_id: uuid.UUID) -> None:
        """Returns once the key is revoked."""
        found: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not found.done():
                found.set_result(None)

        self.watch(key_id, wake)
        try:
            await found
        finally:
            self.unwatch(key_id, wake)

    async def until_revoked(
        self, items: AsyncIterator[T], key_id: uuid.UUID
    ) -> AsyncGenerator[T, None]:
        """The items of `items` until the key is revoked; then it ends, closing `items`."""
        revoked = asyncio.ensure_future(self.revoked(key_id))
        step: asyncio.Future[T] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(items))
                await asyncio.wait((step, revoked), return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    return  # revoked
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            revoked.cancel()
            if step is not None and not step.done():
                step.cancel()
                await asyncio.wait((step,))
            if isinstance(items, AsyncGenerator):
                await items.aclose()
