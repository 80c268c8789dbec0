"""An API process with its cyclic-GC pauses on record, for bench/progress_latency.py.

    BENCH_APP=lexintel_api.app:app uvicorn --app-dir bench gc_probe:app

Serves the app named by BENCH_APP unchanged, plus `GET /bench/gc-pauses`: every collection
since the last `?reset=1` as [generation, milliseconds], from `gc.callbacks`.
"""

from __future__ import annotations

import gc
import importlib
import os
import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

module, _, attribute = os.environ.get("BENCH_APP", "lexintel_api.app:app").partition(":")
served = getattr(importlib.import_module(module), attribute)
pauses: list[tuple[int, float]] = []
_started = 0.0


def _record(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        pauses.append((info["generation"], round((time.perf_counter() - _started) * 1000, 3)))


gc.callbacks.append(_record)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["path"] == "/bench/gc-pauses":
        response = JSONResponse(list(pauses))
        if b"reset=1" in scope.get("query_string", b""):
            pauses.clear()
        await response(scope, receive, send)
        return
    await served(scope, receive, send)
