"""The WebSocket protocols' handlers.

graphql-transport-ws messages are checked before Strawberry handles them: a message of the
wrong shape (not an object, a `subscribe` without an object payload holding a string
`query`, an id that is not a string) closes the socket with 4400 "invalid message", as the
protocol says, instead of failing inside the server.

A socket is authenticated at `connection_init`, so both protocols re-check its key before
each operation and while it is open (lexintel_api.revocation): once the key is revoked the
socket's operations end and it is closed with 4403. A socket has one key: a second
`connection_init` closes it (4429) in both protocols.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws import types as legacy
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from lexintel_api.graphql.context import Context

logger = logging.getLogger(__name__)

_OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "variables": dict,
    "operationName": str,
    "extensions": dict,
}


def message_problem(message: Any) -> str | None:
    """What is wrong with a received graphql-transport-ws message, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string `type`"
    if message["type"] in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return f"a `{message['type']}` message needs a string `id`"
    if message["type"] != "subscribe":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "a `subscribe` message needs a payload object with a string `query`"
    for name, kind in _OPTIONAL_TYPES.items():
        if payload.get(name) is not None and not isinstance(payload[name], kind):
            return f"`payload.{name}` of a `subscribe` message has the wrong type"
    return None


class _KeyRechecks:
    """Closes the socket with 4403 once its key is revoked."""

    context: Context
    websocket: AsyncWebSocketAdapter
    _watched_key: uuid.UUID | None = None
    _closing: asyncio.Task[None] | None = None

    def _watch_key(self) -> None:
        if self._watched_key is None and self.context.principal is not None:
            self._watched_key = self.context.principal.api_key_id
            self.context.services.key_watch.watch(self._watched_key, self._revoked)

    def _stop_watching_key(self) -> None:
        if self._watched_key is not None:
            self.context.services.key_watch.unwatch(self._watched_key, self._revoked)

    async def _key_is_active(self) -> bool:
        principal = self.context.require_principal()
        return await self.context.services.key_watch.is_active(principal.api_key_id)

    def _revoked(self) -> None:
        self._closing = asyncio.create_task(self._close_revoked())

    async def _close_revoked(self) -> None:
        try:
            await self._forbid()
        except Exception:
            logger.exception("cannot close the WebSocket of revoked key %s", self._watched_key)

    async def _forbid(self) -> None:
        await self._end_operations()
        await self.websocket.close(code=4403, reason="Forbidden")

    async def _end_operations(self) -> None:
        raise NotImplementedError


class TransportWSHandler(_KeyRechecks, BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_message(self, message: Any) -> None:
        problem = message_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._watch_key()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Every operation (query, mutation or subscription) re-checks the key."""
        if self.connection_acknowledged and not await self._key_is_active():
            await self._forbid()
            return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        self._stop_watching_key()
        await super().shutdown()

    async def _end_operations(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)


class LegacyWSHandler(_KeyRechecks, BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol (LEXINTEL_API_LEGACY_GRAPHQL_WS), same key checks."""

    async def handle_connection_init(self, message: legacy.ConnectionInitMessage) -> None:
        if self.connection_acknowledged:
            # Strawberry would authenticate again and swap the socket's key under its
            # running operations and the key watch: refused, as graphql-transport-ws does.
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._watch_key()

    async def handle_start(self, message: legacy.StartMessage) -> None:
        if self.connection_acknowledged and not await self._key_is_active():
            await self._forbid()
            return
        await super().handle_start(message)

    async def cleanup(self) -> None:
        self._stop_watching_key()
        await super().cleanup()

    async def _end_operations(self) -> None:
        for operation_id in list(self.tasks):
            await self.cleanup_operation(operation_id)
