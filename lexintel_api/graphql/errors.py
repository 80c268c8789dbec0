"""Every GraphQL error leaves with a stable `extensions.code`; internal errors are masked."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

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


class ErrorCodes(MaskErrors):
    """MaskErrors that also names every error it lets through."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [_coded(error) for error in errors]
