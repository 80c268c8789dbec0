"""`GET /metrics`: request counts and latency by route, and the progress hub's numbers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lexintel_core.settings import Settings
from tests.api.conftest import (
    PROGRESS,
    Api,
    Tenant,
    create_case,
    running_worker,
    subscribe,
    upload,
)
from tests.jobs.conftest import make_pdf

PAGES = ["Master Services Agreement\nThe Supplier shall indemnify the Customer."]


async def scrape(api: Api) -> str:
    async with httpx.AsyncClient(base_url=api.url) as client:  # no API key needed
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


async def wait_for_subscribers(api: Api, count: int) -> str:
    async with asyncio.timeout(10):
        while True:
            text = await scrape(api)
            if sample(text, "lexintel_api_active_subscriptions") == count:
                return text
            await asyncio.sleep(0.05)


async def test_metrics_count_requests_and_live_subscriptions(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, make_pdf(PAGES), "msa.pdf")

    # No worker yet: the subscription stays open on QUEUED and the gauge sees it.
    following = asyncio.create_task(subscribe(api, acme.key, PROGRESS, id=document_id))
    live = await wait_for_subscribers(api, 1)
    assert sample(live, "lexintel_api_hub_reconnects_total") == 0

    async with running_worker(api_settings):
        results = await asyncio.wait_for(following, timeout=30)
    assert results[-1]["documentProgress"]["status"] == "READY"

    # The HTTP counters are process-wide (starlette-exporter): compare before and after.
    requests = "lexintel_api_http_requests_total"
    unknown = {"method": "GET", "path": "__unknown__", "status_code": "404"}
    labels = {"app_name": "lexintel_api"}
    before = sample(await scrape(api), requests, **labels, **unknown) or 0
    async with httpx.AsyncClient(base_url=api.url) as client:
        missing = await client.get("/no/such/page")
    assert missing.status_code == 404

    text = await wait_for_subscribers(api, 0)
    graphql = {"method": "POST", "path": "/graphql", "status_code": "200"}
    graphql_ok = sample(text, requests, **labels, **graphql)
    assert graphql_ok is not None
    assert graphql_ok >= 2  # createCase and uploadDocument
    scrapes = sample(text, requests, **labels, method="GET", path="/metrics", status_code="200")
    assert scrapes is not None
    assert scrapes >= 1
    # A path no route matches counts under one label: no unbounded label values.
    assert sample(text, requests, **labels, **unknown) == before + 1
    assert sample(text, requests, **labels, method="GET", path="/no/such/page") is None
    latency_count = sample(
        text,
        "lexintel_api_http_request_duration_seconds_count",
        **labels,
        method="POST",
        path="/graphql",
        status_code="200",
    )
    assert latency_count == graphql_ok
    assert sample(text, "lexintel_api_hub_reconnects_total") == 0
