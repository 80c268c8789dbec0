"""Every GraphQL error leaves with a stable `extensions.code`; internal errors are masked."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult, StreamExecutionResult

from lexintel_core.connections import UNAVAILABLE_MESSAGE, is_connection_failure
from lexintel_core.errors import ErrorCode, LexIntelError, RateLimited

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INTERNAL_MESSAGE = "Internal server error"


def is_expected(error: GraphQLError) -> bool:
    """Our own typed errors and GraphQL's parse/validation errors: safe to show."""
    original = error.original_error
    return original is None or isinstance(original, (LexIntelError, GraphQLError))


def _coded(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    message, extensions = error.message, dict(error.extensions or {})
    if isinstance(original, LexIntelError):
        message, extensions["code"] = original.message, original.code.value
        if isinstance(original, RateLimited):
            extensions["retryAfter"] = original.retry_after
    elif original is None or isinstance(original, GraphQLError):
        extensions.setdefault("code", VALIDATION_FAILED)
    elif is_connection_failure(original):
        message, original = UNAVAILABLE_MESSAGE, None
        extensions = {"code": ErrorCode.SERVICE_UNAVAILABLE.value}
    else:  # masked: neither the message nor the exception leaves the server
        message, original = INTERNAL_MESSAGE, None
        extensions = {"code": ErrorCode.INTERNAL_SERVER_ERROR.value}
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original,
        extensions=extensions,
    )


def _code_errors(result: GraphQLExecutionResult | StreamExecutionResult | None) -> None:
    if isinstance(result, (GraphQLExecutionResult, ExecutionResult)) and result.errors:
        result.errors = [_coded(error) for error in result.errors]


class ErrorCodes(SchemaExtension):
    """Names every error and masks the unexpected ones, after `Schema.process_errors` has
    logged the originals: a single result when the operation ends, a streamed one (a
    subscription's, or any operation over SSE or a WebSocket) before it is sent."""

    _streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:  # a stream's last result already left, coded
            _code_errors(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._streamed = True
        _code_errors(result)
        yield
