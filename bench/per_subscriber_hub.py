"""The baseline for bench/progress_latency.py: the API as the original design built it, with one
Redis Pub/Sub connection per subscriber instead of the shared hub's one per process.

    uvicorn --app-dir bench per_subscriber_hub:app

Everything else (schema, authentication, snapshot-then-events, seq filtering, completion after
the terminal event) is LexIntel's own code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from uuid import UUID

from lexintel_api import services
from lexintel_api.hub import ProgressHub
from lexintel_core.progress import ProgressEvent, read_snapshot


class PerSubscriberHub(ProgressHub):
    async def _watch(
        self, name: str, document_id: UUID | None, after_seq: int
    ) -> AsyncGenerator[ProgressEvent, None]:
        assert self._pubsub_client is not None
        assert self._client is not None
        pubsub = self._pubsub_client.pubsub()  # a connection of its own from the pool
        try:
            await pubsub.subscribe(name)
            last_seq = after_seq
            if document_id is not None:
                snapshot = await read_snapshot(self._client, document_id)
                if snapshot is not None:
                    if snapshot.seq > last_seq:
                        last_seq = snapshot.seq
                        yield snapshot
                    if snapshot.is_terminal:
                        return
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                event = ProgressEvent.from_json(message["data"])
                if event.seq <= last_seq:
                    continue
                last_seq = event.seq
                yield event
                if document_id is not None and event.is_terminal:
                    return
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


services.ProgressHub = PerSubscriberHub  # type: ignore[attr-defined]

from lexintel_api.app import app  # noqa: E402 - after the hub is replaced

__all__ = ["app"]
