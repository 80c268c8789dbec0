"""Error codes and masking (lexintel_api.graphql.errors) on a small schema of its own:
every error leaves with `extensions.code`; what we did not raise leaves as a bare
INTERNAL_SERVER_ERROR, over execute and over a stream alike."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import pytest
import strawberry
from graphql import GraphQLError, GraphQLFormattedError

from lexintel_api.graphql.errors import INTERNAL_MESSAGE, ErrorCodes
from lexintel_api.graphql.schema import LexIntelSchema
from lexintel_core.connections import UNAVAILABLE_MESSAGE
from lexintel_core.errors import NotFound, RateLimited

SECRET = "password=hunter2"


@strawberry.type
class Query:
    @strawberry.field
    def fine(self) -> int:
        return 1

    @strawberry.field
    def ours(self) -> int:
        raise NotFound("no such case")

    @strawberry.field
    def limited(self) -> int:
        raise RateLimited("slow down", retry_after=7)

    @strawberry.field
    def graphql_error(self) -> int:
        raise GraphQLError("told you", extensions={"code": "CUSTOM"})

    @strawberry.field
    def bug(self) -> int:
        raise RuntimeError(SECRET)

    @strawberry.field
    def outage(self) -> int:
        raise RuntimeError(SECRET) from ConnectionRefusedError("redis")


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, fail: bool) -> AsyncGenerator[int, None]:
        yield 1
        if fail:
            raise RuntimeError(SECRET)


schema = strawberry.Schema(query=Query, subscription=Subscription, extensions=[ErrorCodes])


async def _error(query: str) -> GraphQLFormattedError:
    result = await schema.execute(query)
    assert result.errors is not None
    assert len(result.errors) == 1
    return result.errors[0].formatted


async def test_our_errors_keep_their_message_and_code() -> None:
    error = await _error("{ fine ours }")
    assert error["message"] == "no such case"
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert error["path"] == ["ours"]


async def test_rate_limited_says_when_to_retry() -> None:
    error = await _error("{ limited }")
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 7}


async def test_graphql_errors_are_shown_and_keep_their_code() -> None:
    error = await _error("{ graphqlError }")
    assert error["message"] == "told you"
    assert error["extensions"] == {"code": "CUSTOM"}


@pytest.mark.parametrize("query", ["{ nope }", "{ fine", "query($x: Int!) { fine }"])
async def test_request_errors_are_validation_failures(query: str) -> None:
    error = await _error(query)
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_unexpected_errors_are_masked() -> None:
    result = await schema.execute("{ fine bug }")
    assert result.data is None
    assert result.errors is not None
    (error,) = result.errors
    assert error.original_error is None
    assert error.formatted == {
        "message": INTERNAL_MESSAGE,
        "locations": [{"line": 1, "column": 8}],
        "path": ["bug"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }


async def test_masked_errors_are_logged_with_the_original(caplog: pytest.LogCaptureFixture) -> None:
    logged = LexIntelSchema(query=Query, extensions=[ErrorCodes])
    with caplog.at_level(logging.ERROR, logger="lexintel_api.graphql"):
        expected = await logged.execute("{ ours }")
        unexpected = await logged.execute("{ bug }")
    assert expected.errors is not None
    assert unexpected.errors is not None
    assert [error.message for error in expected.errors + unexpected.errors] == [
        "no such case",
        INTERNAL_MESSAGE,
    ]
    (record,) = caplog.records  # only the error we did not raise
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == SECRET


async def test_connection_failures_say_try_again() -> None:
    result = await schema.execute("{ outage }")
    assert result.errors is not None
    (error,) = result.errors
    assert error.original_error is None
    assert error.message == UNAVAILABLE_MESSAGE
    assert error.extensions == {"code": "SERVICE_UNAVAILABLE"}
    assert SECRET not in str(error.formatted)


async def test_stream_results_are_coded_and_masked_before_they_leave() -> None:
    stream = await schema.subscribe("subscription { ticks(fail: true) }")
    assert not isinstance(stream, strawberry.types.ExecutionResult)
    # Formatted as each result arrives: a transport sends it before the stream ends.
    sent = [(result.data, [e.formatted for e in result.errors or []]) async for result in stream]
    assert sent[0] == ({"ticks": 1}, [])
    assert sent[1][0] is None
    assert [error["extensions"] for error in sent[1][1]] == [{"code": "INTERNAL_SERVER_ERROR"}]
    assert SECRET not in str(sent)


async def test_stream_request_errors_are_validation_failures() -> None:
    stream = await schema.subscribe("subscription { nope }")
    results = (
        [stream]
        if isinstance(stream, strawberry.types.ExecutionResult)
        else [r async for r in stream]
    )
    errors = results[0].errors
    assert errors is not None
    assert errors[0].formatted["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
