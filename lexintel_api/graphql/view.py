"""Strawberry's ASGI view with LexIntel's context and WebSocket authentication."""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from lexintel_api.auth import authenticate, bearer_token
from lexintel_api.graphql.context import Context
from lexintel_api.services import Services
from lexintel_core.connections import UNAVAILABLE_MESSAGE, is_connection_failure
from lexintel_core.errors import ErrorCode, Unauthenticated


def services_of(request: HTTPConnection) -> Services:
    services: Services = request.app.state.services
    return services


class LexIntelGraphQL(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        context = Context(services=services_of(request), request=request, response=response)
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            try:
                context.principal = await authenticate(context.services.sessions, token)
            except Unauthenticated as exc:
                context.auth_error = exc
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from `connection_init` ({"authorization": "Bearer <key>"}), or from
        the handshake's Authorization header for clients that can send one."""
        params: dict[str, Any] = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization")
        if isinstance(raw, str):
            token = bearer_token(raw) or raw.strip()
            try:
                context.principal = await authenticate(context.services.sessions, token)
            except Unauthenticated as exc:
                raise ConnectionRejectionError({"code": exc.code.value}) from exc
            except Exception as exc:
                if not is_connection_failure(exc):
                    raise
                raise ConnectionRejectionError(
                    {"code": ErrorCode.SERVICE_UNAVAILABLE.value, "message": UNAVAILABLE_MESSAGE}
                ) from exc
        if context.principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        return cast("UnsetType", UNSET)
