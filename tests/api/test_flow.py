"""End to end: upload over multipart, live progress over WebSocket, search, over real HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from arq.worker import Worker

from tests.api.conftest import (
    PROGRESS,
    Api,
    Tenant,
    create_case,
    execute,
    subscribe,
    upload,
)
from tests.jobs.conftest import make_pdf

SEARCH = """
query($q: String!, $caseId: UUID) {
  search(query: $q, caseId: $caseId, mode: KEYWORD, limit: 3) {
    pageStart pageEnd filename snippet document { id status }
  }
}
"""

FILLER = "\n".join(f"Clause {n}: the parties record their recitals in full." for n in range(40))
PAGES = [
    f"Master Services Agreement\n{FILLER}",
    f"Article 7. Indemnification\n{FILLER}\nThe Supplier shall indemnify the Customer.\n{FILLER}",
    f"Article 9. Governing law\nThis agreement is governed by Delaware law.\n{FILLER}",
]


async def test_health_endpoints(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}


async def test_graphiql_is_served_to_browsers(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "graphiql" in page.text.lower()


async def test_upload_follow_progress_then_search_with_page_numbers(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, make_pdf(PAGES), "msa.pdf")

    results = await subscribe(api, acme.key, PROGRESS, id=document_id)
    events = [result["documentProgress"] for result in results]
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs)), seqs
    assert len(events) >= 2
    assert events[-1]["status"] == "READY"
    assert {event["status"] for event in events[:-1]} <= {
        "QUEUED",
        "EXTRACTING",
        "CHUNKING",
        "EMBEDDING",
    }

    data = await execute(api, acme.key, SEARCH, q="Supplier shall indemnify", caseId=case_id)
    [best, *_] = data["search"]
    assert best["document"] == {"id": document_id, "status": "READY"}
    assert best["filename"] == "msa.pdf"
    assert (best["pageStart"], best["pageEnd"]) == (2, 2)
    assert "<mark>indemnify</mark>" in best["snippet"]

    # The document's chunks page in reading order and cite their pages.
    chunks_query = """
    query($id: UUID!, $after: String) {
      document(id: $id) {
        pageCount chunkCount
        chunks(first: 2, after: $after) {
          nodes { ordinal pageStart pageEnd } pageInfo { hasNextPage endCursor }
        }
      }
    }
    """
    ordinals: list[int] = []
    pages: set[int] = set()
    after = None
    while True:
        document = (await execute(api, acme.key, chunks_query, id=document_id, after=after))[
            "document"
        ]
        connection = document["chunks"]
        ordinals += [chunk["ordinal"] for chunk in connection["nodes"]]
        pages |= {chunk["pageStart"] for chunk in connection["nodes"]}
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert document["pageCount"] == 3
    assert ordinals == list(range(document["chunkCount"]))
    assert pages == {1, 2, 3}

    # Subscribing after READY yields the READY snapshot at once and completes.
    late = await subscribe(api, acme.key, PROGRESS, id=document_id)
    assert [result["documentProgress"] for result in late] == [events[-1]]
