"""uvicorn's WebSocket protocol with less kept per connection (docs/BENCHMARKS.md, memory per
subscriber): `uvicorn lexintel_api.app:app --ws lexintel_api.websocket:WebSocketProtocol`.

uvicorn's default implementation (`websockets-sansio`) keeps, for the life of each connection,
the handshake's request and response (their headers: about 4 KiB) and an `asyncio.Queue` for
the messages the application has not read yet (three deques and an `asyncio.Event`: 3.2 KiB).
A subscription socket lives for hours and reads one message now and then, so this subclass
drops the handshake once the connection is accepted or refused, and queues messages in a
list. Everything else (framing, keepalive pings, limits, close handshake) is uvicorn's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# The value of uvicorn's `--ws` option (and of `uvicorn.Config(ws=...)`) that selects it.
WS_PROTOCOL = f"{__name__}:WebSocketProtocol"


class Inbox:
    """The part of `asyncio.Queue` uvicorn's protocol uses (`put_nowait`, `get`, `empty`),
    unbounded and FIFO, in a list and a future per waiting reader."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiters: list[asyncio.Future[None]] = []

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
        self._wake_next()

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> ASGIReceiveEvent:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif self._items:
                    self._wake_next()  # the item it was woken for goes to the next reader
                raise
        return self._items.pop(0)

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol, less the handshake and queue it keeps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete:
            # The handshake's request and response are read only until it completes.
            self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)
