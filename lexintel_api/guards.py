"""ASGI guards: CSRF header and body size cap in front of GraphQL multipart uploads, and a
503 instead of a 500 while the database or Redis is unreachable."""

from __future__ import annotations

import json
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lexintel_core.connections import UNAVAILABLE_MESSAGE, is_connection_failure
from lexintel_core.errors import ErrorCode

logger = logging.getLogger("lexintel.api")

# A browser sends none of these cross-site without a CORS preflight, which our allowed
# origins then decide. (A plain HTML form can post multipart/form-data with no preflight,
# which is why Strawberry leaves multipart uploads off by default.)
PREFLIGHT_HEADERS = ("graphql-require-preflight", "apollo-require-preflight", "x-csrf-token")


class _BodyTooLarge(Exception):
    pass


def error_body(code: ErrorCode, message: str) -> bytes:
    """The JSON body of a request refused before GraphQL ran."""
    return json.dumps(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code.value}}]}
    ).encode()


async def send_error(send: Send, status: int, code: ErrorCode, message: str) -> None:
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
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
    def __init__(self, app: ASGIApp, *, path: str, max_body_bytes: int) -> None:
        self.app = app
        self.path = path
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not headers.get("content-type", "").lower().startswith("multipart/"):
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

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        tracked = _TrackedSend(send)
        try:
            await self.app(scope, counting_receive, tracked)
        except _BodyTooLarge:
            if not tracked.started:
                await send_error(send, 413, ErrorCode.FILE_TOO_LARGE, too_large)


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
