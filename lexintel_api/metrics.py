"""Prometheus metrics of one API app, in the app's own registry (`create_app` may run many
times in one process): HTTP requests by method, route template and status, their latency, and
the progress hub's live subscriptions and Redis reconnects, read when `/metrics` is scraped."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lexintel_api.services import Services

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "<unmatched>"  # one label for every unknown path: no unbounded label values
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lexintel_api_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lexintel_api_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response (streams: their lifetime).",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_hub(self, state: State) -> None:
        """Report the hub of `state.services` (set by the app's lifespan) at scrape time."""
        self.registry.register(_HubCollector(state))

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`, in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _HubCollector:
    """The progress hub's numbers, read at scrape time (nothing while the app is not running)."""

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        services: Services | None = getattr(self._state, "services", None)
        if services is None:
            return
        hub = services.hub
        yield GaugeMetricFamily(
            "lexintel_api_active_subscriptions",
            "Live progress subscriptions (GraphQL and SSE) on this process's hub.",
            value=hub.subscriber_count,
        )
        yield CounterMetricFamily(
            "lexintel_api_hub_reconnects",
            "Times the progress hub reconnected its Redis Pub/Sub connection.",
            value=hub.reconnects,
        )


class MetricsMiddleware:
    """Pure ASGI: counts and times every HTTP request (WebSockets are left alone)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                path = getattr(route, "path", None)
                return path if isinstance(path, str) else _UNMATCHED
        return _UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = self._route(scope)
        status = 500  # unless a response starts: an exception, or a dropped connection
        started = time.perf_counter()

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
