"""Prometheus metrics of the API: HTTP requests by method, route template and status, their
latency and those in progress (starlette-exporter's middleware, `http_middleware`), and the
progress hub's live subscriptions and Redis reconnects, failed authentications and refusals
by the per-tenant limits, read when `/metrics` is scraped.

starlette-exporter keeps its metrics in prometheus-client's process-wide registry (one app per
API process); the hub's numbers come from the app's own registry (`create_app` may run many
times in one process, as the tests do). `/metrics` serves both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.datastructures import State
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette_exporter import PrometheusMiddleware

from lexintel_api.services import Services

PREFIX = "lexintel_api_http"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))


def http_middleware() -> Middleware:
    """Counts and times every HTTP request: `lexintel_api_http_requests_total` and
    `lexintel_api_http_request_duration_seconds` by method, route template (`path`; one
    `__unknown__` for paths no route matches, so no unbounded label values) and status,
    and `lexintel_api_http_requests_in_progress`."""
    options: dict[str, Any] = {
        "app_name": "lexintel_api",
        "prefix": PREFIX,
        "group_paths": True,
        "group_unhandled_paths": True,
        "filter_unhandled_paths": False,
        "buckets": _LATENCY_BUCKETS,
        "optional_metrics": [],
    }
    return Middleware(PrometheusMiddleware, **options)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def watch_hub(self, state: State) -> None:
        """Report the hub of `state.services` (set by the app's lifespan) at scrape time."""
        self.registry.register(_HubCollector(state))

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`, in the Prometheus text format."""
        body = generate_latest(REGISTRY) + generate_latest(self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


class _HubCollector:
    """The progress hub's and the per-tenant limits' numbers, read at scrape time (nothing
    while the app is not running)."""

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
        # Per-tenant limits (lexintel_api.limits): alert on a climbing failure rate.
        limits = services.limits
        yield CounterMetricFamily(
            "lexintel_api_auth_failures",
            "Failed authentications on this process: unknown or revoked API keys, invalid or "
            "expired stream tokens.",
            value=limits.auth_failures,
        )
        refused = CounterMetricFamily(
            "lexintel_api_limit_refusals",
            "Requests this process refused for a per-tenant limit: `requests` (per key per "
            "second), `auth` (failed authentications per address), `subscriptions` (live "
            "subscriptions per organization or key).",
            labels=["limit"],
        )
        for limit in ("requests", "auth", "subscriptions"):
            refused.add_metric([limit], limits.refused[limit])
        yield refused
