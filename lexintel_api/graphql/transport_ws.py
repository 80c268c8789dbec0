"""graphql-transport-ws messages checked before Strawberry handles them: a message of the
wrong shape (not an object, a `subscribe` without an object payload holding a string
`query`, an id that is not a string) closes the socket with 4400 "invalid message", as the
protocol says, instead of failing inside the server."""

from __future__ import annotations

from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from lexintel_api.graphql.context import Context

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


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_message(self, message: Any) -> None:
        problem = message_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)
