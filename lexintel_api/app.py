"""The ASGI application: `uvicorn lexintel_api.app:app`, or `create_app(settings)`.

Routes: `/graphql` (GraphiQL for browsers; GraphQL over HTTP, multipart uploads, WebSocket
`graphql-transport-ws`, GraphQL over SSE), `/graphql/assets/{name}` (GraphiQL's scripts and
styles, served here: no CDN), `/api/documents/{id}/progress` (plain SSE),
`/healthz` (the process is alive), `/readyz` (database, Redis and migrations ready) and
`/metrics` (Prometheus; no API key: keep it off the public network).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from lexintel_api.access_log import redact_access_log
from lexintel_api.graphiql import graphiql_asset
from lexintel_api.graphql.schema import create_schema
from lexintel_api.graphql.view import LexIntelGraphQL
from lexintel_api.logs import configure_logging
from lexintel_api.metrics import ApiMetrics, http_middleware
from lexintel_api.middleware import PREFLIGHT_HEADERS, OutageGuard, UploadGuard
from lexintel_api.services import open_services, services_of
from lexintel_api.sse import progress_stream
from lexintel_core import readiness
from lexintel_core.settings import Settings


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Database, migrations and Redis, answered within `readiness_timeout_seconds`."""
    services = services_of(request)
    checks = await readiness.check(services.settings, services.engine)
    ready = readiness.is_ready(checks)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings if settings is not None else Settings()
    protocols = [
        GRAPHQL_TRANSPORT_WS_PROTOCOL,
        GRAPHQL_SSE_PROTOCOL,
        MULTIPART_SUBSCRIPTION_PROTOCOL,
    ]
    if settings.api_legacy_graphql_ws:
        protocols.append(GRAPHQL_WS_PROTOCOL)
    graphql = LexIntelGraphQL(
        create_schema(settings),
        subscription_protocols=protocols,
        connection_init_wait_timeout=timedelta(
            seconds=settings.api_connection_init_timeout_seconds
        ),
        multipart_uploads_enabled=True,
        max_subscriptions_per_connection=settings.api_max_subscriptions_per_connection,
        allowed_origins=settings.api_allowed_origins,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            if settings.api_gc_freeze:
                gc.collect()
                gc.freeze()
            gc.set_threshold(*settings.api_gc_threshold)
            yield

    metrics = ApiMetrics()
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/api/documents/{document_id}/progress", progress_stream),
        Route("/graphql", graphql),
        Route("/graphql/assets/{name}", graphiql_asset, methods=["GET"]),
        WebSocketRoute("/graphql", graphql),
    ]
    # The client address (failed-authentication throttling) comes from X-Forwarded-For only
    # when the peer is one of these proxies; uvicorn's own proxy handling stays off.
    proxies = settings.api_trusted_proxies
    app = Starlette(
        routes=routes,
        middleware=[
            *([Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)] if proxies else []),
            http_middleware(),
            Middleware(OutageGuard),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.api_allowed_origins,
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "last-event-id",
                    *PREFLIGHT_HEADERS,
                ],
                max_age=600,
            ),
            Middleware(
                UploadGuard,
                path="/graphql",
                settings=settings,
            ),
        ],
        lifespan=lifespan,
    )
    metrics.watch_hub(app.state)
    redact_access_log()  # SSE stream tokens ride in URLs
    configure_logging()
    return app


app = create_app()
