"""Abuse that is not about keys: introspection policy, batched requests, SQL and tsquery
metacharacters in search. Each gets a clear refusal or a plain answer, and the server stays
healthy afterwards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from arq.worker import Worker

from lexintel_core.settings import Settings
from tests.api.conftest import (
    PREFLIGHT,
    PROGRESS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    serve,
    subscribe,
    upload,
)

SCHEMA = "{ __schema { queryType { name } } }"
VIA_FRAGMENT = 'query { ...F } fragment F on Query { __type(name: "Case") { name } }'
SEARCH = """
query($q: String!, $mode: SearchMode!) {
  search(query: $q, mode: $mode, limit: 5) { filename snippet }
}
"""
HOSTILE_QUERIES = [
    "'; DROP TABLE documents; --",
    '" OR 1=1 --',
    "indemnify' OR '1'='1",
    "a & | ! ( ) <-> :* \\",
    "!!!",
    "(((indemnify",
    "indemnify:*AB",
    "%_%",
    "$1 $2 ::text",
    "\x00indemnify",
    "indemnify \ud7ff \U0001f525",
    "x" * 5000,
    "",
]


async def _search(api: Api, key: str, query: str, mode: str) -> list[dict[str, Any]] | str | None:
    """The hits, or the code of the refusal."""
    try:
        hits: list[dict[str, Any]] = (await execute(api, key, SEARCH, q=query, mode=mode))["search"]
    except GraphQLFailed as refused:
        return refused.code
    return hits


async def _healthy(api: Api, key: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert await execute(api, key, "{ cases(first: 1) { nodes { id } } }")


async def test_introspection_needs_a_key(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    for query in (SCHEMA, VIA_FRAGMENT):
        with pytest.raises(GraphQLFailed) as refused:
            await execute(api, None, query)
        assert refused.value.code == "UNAUTHENTICATED", query
    assert (await execute(api, acme.key, SCHEMA))["__schema"]["queryType"]["name"] == "Query"
    assert (await execute(api, acme.key, VIA_FRAGMENT))["__type"]["name"] == "Case"
    # GraphiQL itself is a static page; what it then asks for needs the key.
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_introspection_can_be_turned_off(
    api_settings: Settings, api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    async with serve(api_settings.model_copy(update={"api_introspection": False})) as closed:
        for query in (SCHEMA, VIA_FRAGMENT):
            with pytest.raises(GraphQLFailed) as refused:
                await execute(closed, acme.key, query)
            assert refused.value.code == "GRAPHQL_VALIDATION_FAILED", query
        # Ordinary queries (and __typename) still work.
        assert await execute(closed, acme.key, "{ __typename cases(first: 1) { nodes { id } } }")


async def test_batched_requests_are_refused(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    batch = [{"query": "{ cases(first: 100) { nodes { id } } }"}] * 100
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.post(
            "/graphql",
            json=batch,
            headers={"Authorization": f"Bearer {acme.key}", **PREFLIGHT},
        )
    # One operation per request: a batch would multiply every per-request limit.
    assert response.status_code == 400
    assert "batch" in response.text.lower()
    await _healthy(api, acme.key)


async def test_sql_and_tsquery_metacharacters_in_search_are_plain_text(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(
        api, acme.key, case_id, b"The Supplier shall indemnify the Customer.", "msa.txt"
    )
    events = await subscribe(api, acme.key, PROGRESS, id=document_id)
    assert events[-1]["documentProgress"]["status"] == "READY"

    for query in HOSTILE_QUERIES:
        for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
            outcome = await _search(api, acme.key, query, mode)
            # Plain results, or a refusal with a reason (empty, too long): never a server error.
            assert outcome == "INVALID_INPUT" or isinstance(outcome, list), (query[:40], mode)
            if isinstance(outcome, list):
                assert all(hit["filename"] == "msa.txt" for hit in outcome), (query[:40], mode)

    # Nothing was dropped or rewritten: the document is still there and still found.
    hits = (await execute(api, acme.key, SEARCH, q="indemnify", mode="KEYWORD"))["search"]
    assert [hit["filename"] for hit in hits] == ["msa.txt"]
    await _healthy(api, acme.key)


async def test_wide_queries_are_refused_before_they_run(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    wide = "{ cases(first: 1) { nodes { " + "id name createdAt " * 1000 + "} } }"
    with pytest.raises(GraphQLFailed) as refused:
        await execute(api, acme.key, wide)
    assert refused.value.code == "GRAPHQL_VALIDATION_FAILED"
    assert "token" in refused.value.errors[0]["message"].lower()
    await _healthy(api, acme.key)
