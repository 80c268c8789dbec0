"""Plain Server-Sent Events for browsers' `EventSource`: one document's progress.

`GET /api/documents/{id}/progress?token=...` (the absolute URL that the
`createProgressStream` mutation returns: an EventSource cannot send headers), or with
`Authorization: Bearer <key>`. Each event is a default `message` event (`onmessage`) whose
data is the progress event as JSON and whose `id:` is its seq, so a reconnecting EventSource
resumes via `Last-Event-ID` (the latest snapshot newer than it, then live events). The stream
ends after the terminal event; the EventSource's reconnection then gets `204 No Content`,
which tells it to stop. Framing and keep-alive pings come from sse-starlette. Once the key
(or the key that issued the token) is revoked, the stream ends and the token gets 401.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from lexintel_api.auth import authenticate, bearer_token
from lexintel_api.limits import TenantLimits
from lexintel_api.service_layer import DocumentService
from lexintel_api.services import services_of
from lexintel_core.connections import is_connection_failure
from lexintel_core.errors import (
    InvalidInput,
    LexIntelError,
    NotFound,
    RateLimited,
    TooManySubscriptions,
    Unauthenticated,
)

HEARTBEAT_SECONDS = 15.0
_MAX_SEQ_DIGITS = 18  # a seq fits PostgreSQL's bigint

logger = logging.getLogger(__name__)

_STATUS = {
    Unauthenticated: 401,
    NotFound: 404,
    InvalidInput: 400,
    RateLimited: 429,
    TooManySubscriptions: 429,
}


def _error(exc: LexIntelError) -> JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return JSONResponse(
        {"error": {"code": exc.code.value, "message": exc.message}},
        status_code=status,
        headers=headers,
    )


def _after_seq(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or "0"
    # ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_SEQ_DIGITS):
        raise InvalidInput("Last-Event-ID must be the seq of an event (ASCII digits)")
    return int(raw)


async def progress_stream(request: Request) -> Response:
    services = services_of(request)
    try:
        document_id = uuid.UUID(request.path_params["document_id"])
    except ValueError:
        return _error(InvalidInput("not a document id"))
    try:
        token = request.query_params.get("token")
        async with services.limits.authenticating(request):
            if token:
                principal = services.stream_tokens.verify(token, document_id)
                if not await services.key_watch.is_active(principal.api_key_id):
                    raise Unauthenticated("the API key that issued the stream token is revoked")
            else:
                key = bearer_token(request.headers.get("authorization"))
                principal = await authenticate(services.sessions, key)
        await services.limits.count_request(principal)
        after_seq = _after_seq(request)
        documents = DocumentService(services, principal)
        if await documents.has_ended(document_id, after_seq):
            return Response(status_code=204)  # an EventSource stops reconnecting
        lease = await services.limits.acquire(principal)
    except LexIntelError as exc:
        return _error(exc)
    return _LeasedStream(
        services.key_watch.until_revoked(
            _events(documents, document_id, after_seq), principal.api_key_id
        ),
        services.limits,
        lease,
    )


class _LeasedStream(EventSourceResponse):
    """The stream, holding a live-subscription lease that it gives back however it ends."""

    def __init__(
        self, events: AsyncIterator[ServerSentEvent], limits: TenantLimits, lease: str
    ) -> None:
        super().__init__(
            events,
            ping=HEARTBEAT_SECONDS,  # keeps proxies from closing an idle stream
            headers={"Cache-Control": "no-cache, no-transform"},
        )
        self._limits, self._lease = limits, lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._limits.release(self._lease)


async def _events(
    documents: DocumentService, document_id: uuid.UUID, after_seq: int
) -> AsyncIterator[ServerSentEvent]:
    events = documents.events(document_id, after_seq=after_seq)
    try:
        async for event in events:
            yield ServerSentEvent(data=event.to_json(), id=str(event.seq))
    except LexIntelError:
        return  # the document was deleted meanwhile: end the stream
    except Exception as exc:
        if not is_connection_failure(exc):
            raise
        # The EventSource reconnects by itself and resumes with Last-Event-ID.
        logger.warning("progress stream of %s ended: %s", document_id, exc)
    finally:
        await events.aclose()
