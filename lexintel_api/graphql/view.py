"""Strawberry's ASGI view with LexIntel's context and WebSocket authentication, and the
edge rule for HTTP: a request that is not a well-formed GraphQL request gets a 4xx with a
stable code (a JSON body like every other refusal), never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from lexintel_api.auth import Principal, authenticate, bearer_token
from lexintel_api.graphiql import graphiql_page
from lexintel_api.graphql.context import Context
from lexintel_api.graphql.http_request import (
    BadRequest,
    decode_json,
    operation_of,
    operations_with_files,
)
from lexintel_api.graphql.transport_ws import LegacyWSHandler, TransportWSHandler
from lexintel_api.middleware import error_body
from lexintel_api.services import services_of
from lexintel_core.connections import UNAVAILABLE_MESSAGE, is_connection_failure
from lexintel_core.errors import ErrorCode, LexIntelError, RateLimited, Unauthenticated

GRAPHQL_RESPONSE = "application/graphql-response+json"
_MEDIA_TYPE = "lexintel_media_type"  # set on a request's sub-response by process_result
SUBSCRIPTION_TRANSPORTS = (
    "a subscription needs a streaming transport: a WebSocket (graphql-transport-ws), "
    "GraphQL over SSE (POST with `Accept: text/event-stream`) or incremental delivery over "
    'HTTP (`Accept: multipart/mixed;subscriptionSpec="1.0"`)'
)


class LexIntelGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            try:
                response = await self.run(request)
            except HTTPException as exc:
                code = ErrorCode.NOT_FOUND if exc.status_code == 404 else ErrorCode.INVALID_INPUT
                response = Response(
                    error_body(code, exc.reason), exc.status_code, media_type="application/json"
                )
            except RateLimited as exc:  # from get_context: before the body is read
                response = Response(
                    error_body(exc.code, exc.message),
                    429,
                    headers={"Retry-After": str(exc.retry_after)},
                    media_type="application/json",
                )
            await response(scope, receive, send)
        except ClientDisconnect:
            return  # the client left before its body was read: there is no one to answer
        finally:
            await request.close()  # the uploaded files, also those no resolver got to close

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the request is not valid JSON: {exc.msg}") from exc

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        content_type, _ = parse_content_type(request.content_type or "")
        if request.method == "POST" and "application/json" in content_type:
            data = self.parse_json(await request.get_body())
            if isinstance(data, dict):
                transport = self._get_stream_transport_from_headers(request.headers)
                return operation_of(data, transport.protocol if transport else "http")
            if not isinstance(data, list):
                raise BadRequest(
                    "the request body must be a JSON object with `query` and optionally "
                    "`variables`, `operationName` and `extensions`"
                )
        # GET, multipart (checked in parse_multipart) and batches, which Strawberry refuses.
        return await super().parse_http_body(request)

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> Any:
        try:
            form = await request.get_form_data()
        except StarletteHTTPException as exc:
            raise BadRequest(f"the multipart body cannot be parsed: {exc.detail}") from exc
        return operations_with_files(form.form)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, except that a subscription is refused: over plain HTTP it would
        run like a query and fail inside, its field returning a stream; and that the key is
        checked again now that the body is in (an upload may stream for minutes after
        get_context authenticated it)."""
        principal = context.principal
        key_watch = context.services.key_watch
        if principal is not None and not await key_watch.is_active(principal.api_key_id):
            context.principal = None
            context.auth_error = Unauthenticated("the API key is unknown or revoked")
        method = request_adapter.method
        allowed = OperationType.from_http(method) - {OperationType.SUBSCRIPTION}
        if not self.allow_queries_via_get and method == "GET":
            allowed -= {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise BadRequest(SUBSCRIPTION_TRANSPORTS) from exc
            raise BadRequest(exc.as_http_error_reason(method)) from exc
        except CannotGetOperationTypeError as exc:
            raise BadRequest(exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise BadRequest("No GraphQL query found in the request") from exc

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        request.state.sub_response = sub_response
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """GraphQL over HTTP for a client that accepts application/graphql-response+json:
        that media type, and a request error (the document does not parse or validate, the
        variables do not coerce: nothing ran, so no error has a path) is a 400 without
        `data`. Plain application/json clients get 200 and `data: null`, as before."""
        response = await super().process_result(request, result)
        if GRAPHQL_RESPONSE in request.headers.get("accept", ""):
            sub_response: Response = request.state.sub_response
            setattr(sub_response, _MEDIA_TYPE, GRAPHQL_RESPONSE)
            request_error = result.data is None and bool(result.errors)
            if request_error and all(error.path is None for error in result.errors or []):
                sub_response.status_code = 400
                response.pop("data", None)
        return response

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if getattr(sub_response, _MEDIA_TYPE, None) == GRAPHQL_RESPONSE:
            response.headers["content-type"] = GRAPHQL_RESPONSE
        return response

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        """Strawberry's, except that a subscription over SSE or multipart ends once its key
        is revoked (lexintel_api.revocation)."""
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is not None:
            key_watch, key_id, source = services_of(request).key_watch, principal.api_key_id, stream

            def stream() -> AsyncIterator[str]:
                return key_watch.until_revoked(source(), key_id)

        return await super().create_streaming_response(request, stream, sub_response, headers)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """GraphiQL from this API's own assets (no CDN): see lexintel_api.graphiql."""
        return graphiql_page(request)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        context = Context(services=services_of(request), request=request, response=response)
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            try:
                async with context.services.limits.authenticating(request):
                    context.principal = await authenticate(context.services.sessions, token)
            except (Unauthenticated, RateLimited) as exc:
                context.auth_error = exc
        # An HTTP request is counted here, refused with 429 before its body is read; each
        # operation over a WebSocket is counted by graphql.limits.OperationRate.
        if isinstance(request, Request):
            if isinstance(context.auth_error, RateLimited):
                raise context.auth_error
            if context.principal is not None:
                await context.services.limits.count_request(context.principal)
            request.state.principal = context.principal  # for create_streaming_response
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from `connection_init` ({"authorization": "Bearer <key>"}), or from
        the handshake's Authorization header for clients that can send one."""
        params: dict[str, Any] = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization")
        if isinstance(raw, str):
            token = bearer_token(raw) or raw.strip()
            try:
                async with context.services.limits.authenticating(context.request):
                    context.principal = await authenticate(context.services.sessions, token)
            except (Unauthenticated, RateLimited) as exc:
                raise ConnectionRejectionError(_rejection(exc)) from exc
            except Exception as exc:
                if not is_connection_failure(exc):
                    raise
                raise ConnectionRejectionError(
                    {"code": ErrorCode.SERVICE_UNAVAILABLE.value, "message": UNAVAILABLE_MESSAGE}
                ) from exc
        if context.principal is None:
            raise ConnectionRejectionError(_rejection(context.auth_error))
        return cast("UnsetType", UNSET)


def _rejection(error: LexIntelError | None) -> dict[str, object]:
    """The payload of a refused `connection_init`."""
    if error is None:
        return {"code": ErrorCode.UNAUTHENTICATED.value}
    if isinstance(error, RateLimited):
        return {"code": error.code.value, "retryAfter": error.retry_after}
    return {"code": error.code.value}
