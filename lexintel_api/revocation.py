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
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from sqlalchemy import select

from lexintel_core.connections import is_connection_failure
from lexintel_core.db import SessionFactory
from lexintel_core.models import ApiKey

T = TypeVar("T")

logger = logging.getLogger(__name__)


class KeyWatch:
    """Whether API keys are still active, read from the database at most once per half
    recheck period per key, however many sockets and streams use it."""

    def __init__(self, sessions: SessionFactory, recheck_seconds: float) -> None:
        self._sessions = sessions
        # Streams poll every half period and an answer is reused for as long, so a revoke
        # is seen at most two halves later.
        self.poll_seconds = recheck_seconds / 2
        # One entry per key used on this process since it started: no eviction needed.
        self._checked: dict[uuid.UUID, tuple[float, bool]] = {}

    async def is_active(self, key_id: uuid.UUID) -> bool:
        now = time.monotonic()
        checked = self._checked.get(key_id)
        if checked is not None and now - checked[0] < self.poll_seconds:
            return checked[1]
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
            return checked[1] if checked is not None else True
        self._checked[key_id] = (now, found is not None)
        return found is not None

    async def revoked(self, key_id: uuid.UUID) -> None:
        """Returns once the key is revoked."""
        while await self.is_active(key_id):  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(self.poll_seconds)

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
                    revoked.result()  # raises what made the check fail
                    return
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
