"""Live progress over WebSocket (graphql-transport-ws) or GraphQL over SSE. Each live
subscription counts against its organization's and key's caps (lexintel_api.limits)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator

import strawberry

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.documents.types import ProgressEventType, progress_event_type


@strawberry.type
class DocumentSubscriptions:
    @strawberry.subscription(
        description="The document's current state at once, then every newer event (seq > "
        "afterSeq); completes after READY, FAILED or CANCELLED."
    )
    async def document_progress(
        self, info: strawberry.Info[Context, None], document_id: uuid.UUID, after_seq: int = 0
    ) -> AsyncGenerator[ProgressEventType, None]:
        principal = info.context.require_principal()
        events = info.context.documents.events(document_id, after_seq=after_seq)
        # The lease is given back before the events stop: once a subscription is gone from
        # the hub, its place is free.
        async with (
            contextlib.aclosing(events),
            info.context.services.limits.subscription(principal),
        ):
            async for event in events:
                yield progress_event_type(event)
                del event  # not kept while waiting for the next one (see progress_event_type)

    @strawberry.subscription(
        description="Events of every document of a case, as they happen; never completes."
    )
    async def case_progress(
        self, info: strawberry.Info[Context, None], case_id: uuid.UUID
    ) -> AsyncGenerator[ProgressEventType, None]:
        principal = info.context.require_principal()
        events = info.context.documents.case_events(case_id)
        async with (
            contextlib.aclosing(events),
            info.context.services.limits.subscription(principal),
        ):
            async for event in events:
                yield progress_event_type(event)
                del event  # not kept while waiting for the next one (see progress_event_type)
