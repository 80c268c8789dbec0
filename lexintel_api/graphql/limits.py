"""Each query and mutation over a WebSocket counts against its key's requests per second (an
HTTP request is counted once, by the view, before its body is read). Subscriptions do not:
the live-subscription caps per organization and per key bound them, and a dashboard opening
a few hundred at once must not be refused for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from lexintel_api.graphql.context import Context
from lexintel_core.errors import RateLimited


class OperationRate(SchemaExtension):
    async def on_validate(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context: Context = execution.context
        if (
            isinstance(context.request, WebSocket)
            and context.principal is not None
            and execution.operation_type is not OperationType.SUBSCRIPTION
        ):
            try:
                await context.services.limits.count_request(context.principal)
            except RateLimited as exc:
                execution.pre_execution_errors = [GraphQLError(exc.message, original_error=exc)]
        yield
