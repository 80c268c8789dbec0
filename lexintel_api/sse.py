"""Plain Server-Sent Events for browsers' `EventSource`: one document's progress.

`GET /api/documents/{id}/progress?token=...` with a token from the `createProgressStream`
mutation (an EventSource cannot send headers), or with `Authorization: Bearer <key>`. Each
event's `id:` is its seq, so a reconnecting EventSource resumes via `Last-Event-ID`; the
stream ends after the terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lexintel_api.auth import Principal, authenticate, bearer_token
from lexintel_api.documents import DocumentService
from lexintel_api.graphql.view import services_of
from lexintel_core.connections import is_connection_failure
from lexintel_core.errors import InvalidInput, LexIntelError, NotFound, Unauthenticated
from lexintel_core.progress import ProgressEvent

HEARTBEAT_SECONDS = 15.0

logger = logging.getLogger(__name__)

_STATUS = {Unauthenticated: 401, NotFound: 404, InvalidInput: 400}


def _error(exc: LexIntelError) -> JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse(
        {"error": {"code": exc.code.value, "message": exc.message}}, status_code=status
    )


def _after_seq(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or "0"
    if not raw.isdigit():
        raise InvalidInput("Last-Event-ID must be the seq of an event")
    return int(raw)


async def progress_stream(request: Request) -> Response:
    services = services_of(request)
    try:
        document_id = uuid.UUID(request.path_params["document_id"])
    except ValueError:
        return _error(InvalidInput("not a document id"))
    try:
        token = request.query_params.get("token")
        if token:
            organization_id = services.stream_tokens.verify(token, document_id)
            principal = Principal(organization_id=organization_id, api_key_id=None)
        else:
            key = bearer_token(request.headers.get("authorization"))
            principal = await authenticate(services.sessions, key)
        after_seq = _after_seq(request)
        documents = DocumentService(services, principal)
        async with services.sessions() as session:
            await documents.get(session, document_id)
    except LexIntelError as exc:
        return _error(exc)
    return StreamingResponse(
        _encode(documents, document_id, after_seq),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


def _format(event: ProgressEvent) -> str:
    return f"id: {event.seq}\nevent: progress\ndata: {event.to_json()}\n\n"


async def _encode(
    documents: DocumentService, document_id: uuid.UUID, after_seq: int
) -> AsyncIterator[str]:
    events = documents.events(document_id, after_seq=after_seq)
    pending: asyncio.Future[ProgressEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
            if not done:
                yield ": ping\n\n"  # keeps proxies from closing an idle stream
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            except LexIntelError:
                return  # the document was deleted meanwhile: end the stream
            except Exception as exc:
                if not is_connection_failure(exc):
                    raise
                # The EventSource reconnects by itself and resumes with Last-Event-ID.
                logger.warning("progress stream of %s ended: %s", document_id, exc)
                return
            pending = None
            yield _format(event)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await events.aclose()
