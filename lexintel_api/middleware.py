"""ASGI guards: CSRF header, an API key, free temp space, a slot among the organization's
uploads in flight and size caps (each file part, the whole body) enforced while the bytes
stream in, in front of GraphQL multipart uploads; and a 503 instead of a 500 while the
database or Redis is unreachable."""

from __future__ import annotations

import json
import logging

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lexintel_api.auth import authenticate, bearer_token
from lexintel_api.services import Services
from lexintel_api.uploads import (
    FilePartMeter,
    MultipartRefused,
    NoUploadSlot,
    UploadSlots,
    free_temp_bytes,
    request_cap,
)
from lexintel_core.connections import UNAVAILABLE_MESSAGE, is_connection_failure
from lexintel_core.errors import ErrorCode, RateLimited, Unauthenticated
from lexintel_core.settings import Settings

logger = logging.getLogger("lexintel.api")

# A browser sends none of these cross-site without a CORS preflight, which our allowed
# origins then decide. (A plain HTML form can post multipart/form-data with no preflight,
# which is why Strawberry leaves multipart uploads off by default.)
PREFLIGHT_HEADERS = ("graphql-require-preflight", "apollo-require-preflight", "x-csrf-token")
# Retry-After of a refused upload: all the organization's slots taken (429), temp space low
# (503; the space comes back as uploads in flight finish and are stored).
SLOT_RETRY_AFTER_SECONDS = 2
SPACE_RETRY_AFTER_SECONDS = 30


def error_body(code: ErrorCode, message: str) -> bytes:
    """The JSON body of a request refused before GraphQL ran."""
    return json.dumps(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code.value}}]}
    ).encode()


async def send_error(
    send: Send, status: int, code: ErrorCode, message: str, *, retry_after: int | None = None
) -> None:
    body = error_body(code, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TrackedSend:
    """`send`, remembering whether the response has started (after which a guard can no
    longer answer with an error of its own)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


class UploadGuard:
    """In front of multipart requests to `path`: the CSRF header, then (before a byte of
    the body is read) an API key, free temp space and a slot among the organization's
    uploads in flight; then, while the body streams in, each file part is cut off once it
    passes `max_upload_bytes`, the body once it holds more than `max_upload_files` files or
    more than uploads.MULTIPART_OVERHEAD_BYTES of other fields (uploads.FilePartMeter), and
    the whole body once it passes the request cap (see uploads.request_cap). A cut-off ends
    the multipart parser, which closes (and so deletes) the request's temporary files
    before the refusal is sent."""

    def __init__(self, app: ASGIApp, *, path: str, settings: Settings) -> None:
        self.app = app
        self.path = path
        self.settings = settings
        self.max_body_bytes = request_cap(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        if not any(headers.get(name) for name in PREFLIGHT_HEADERS):
            await send_error(
                send,
                400,
                ErrorCode.CSRF_HEADER_REQUIRED,
                "multipart requests must carry a `GraphQL-Require-Preflight: 1` header",
            )
            return
        too_large = f"the request body is larger than {self.max_body_bytes} bytes"
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await send_error(send, 413, ErrorCode.FILE_TOO_LARGE, too_large)
            return
        services: Services = scope["app"].state.services
        try:
            async with services.limits.authenticating(HTTPConnection(scope)):
                principal = await authenticate(
                    services.sessions, bearer_token(headers.get("authorization"))
                )
        except Unauthenticated as exc:
            await send_error(send, 401, exc.code, exc.message)
            return
        except RateLimited as exc:  # too many failed authentications from this address
            await send_error(send, 429, exc.code, exc.message, retry_after=exc.retry_after)
            return
        if free_temp_bytes() < self.settings.api_min_free_temp_bytes:
            logger.warning("upload refused: the temp directory has too little free space")
            await send_error(
                send,
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                "the API is low on temporary space for uploads: try again later",
                retry_after=SPACE_RETRY_AFTER_SECONDS,
            )
            return
        slots = UploadSlots(services.redis, self.settings.api_max_concurrent_uploads_per_org)
        try:
            async with slots.hold(principal.organization_id):
                await self._stream(scope, receive, send, content_type, too_large)
        except NoUploadSlot:
            await send_error(
                send,
                429,
                ErrorCode.RATE_LIMITED,
                f"this organization already has {slots.limit} uploads in progress: "
                "wait for one to finish",
                retry_after=SLOT_RETRY_AFTER_SECONDS,
            )

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, content_type: str, too_large: str
    ) -> None:
        meter = FilePartMeter(content_type, self.settings)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_body_bytes:
                    raise MultipartRefused(413, ErrorCode.FILE_TOO_LARGE, too_large)
                meter.feed(chunk)
            return message

        tracked = _TrackedSend(send)
        try:
            await self.app(scope, counting_receive, tracked)
        except MultipartRefused as exc:
            if not tracked.started:
                await send_error(send, exc.status, exc.code, exc.message)


class OutageGuard:
    """An HTTP request that fails because the database or Redis is unreachable (in
    authentication, say, before GraphQL runs) gets 503 SERVICE_UNAVAILABLE, not a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = _TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if tracked.started or not is_connection_failure(exc):
                raise
            logger.warning("%s %s: %s", scope["method"], scope["path"], UNAVAILABLE_MESSAGE)
            await send_error(send, 503, ErrorCode.SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE)
