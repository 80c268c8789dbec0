"""API keys and organization isolation: nothing of organization B is visible to A's key."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select, update

from lexintel_api.auth import Principal, StreamTokens
from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import HashingEmbedder
from lexintel_core.errors import Unauthenticated
from lexintel_core.models import ApiKey, Document, DocumentChunk, Organization
from lexintel_core.status import ProcessingStatus
from tests import factories
from tests.api.conftest import (
    WS_PROTOCOLS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    file,
    subscribe,
    upload,
)
from tests.jobs.conftest import make_pdf


@dataclass(frozen=True)
class Victim:
    case_id: str
    ready_id: str  # READY, with chunks about a merger
    queued_id: str  # still QUEUED


@pytest.fixture
async def victim(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> Victim:
    globex = await tenant("Globex Corp")
    async with sessions.begin() as session:
        org = await session.get(Organization, globex.organization_id)
        assert org is not None
        case = await factories.case(session, org, name="Project Falcon")
        ready, _ = await factories.indexed_document(
            session,
            HashingEmbedder(dimension=384),
            case,
            "merger.pdf",
            ["The confidential merger terms of Project Falcon."],
        )
        queued = factories.document(case.id, b"queued bytes", "queued.pdf")
        session.add(queued)
    return Victim(str(case.id), str(ready.id), str(queued.id))


# (operation, variables, what A must get: "hidden" (no id of B in the answer) or an error code)
QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("query($id: UUID!) { case(id: $id) { id } }", {"id": "case"}, "hidden"),
    ("query($id: UUID!) { document(id: $id) { id } }", {"id": "ready"}, "hidden"),
    ("{ cases { edges { node { id } } } }", {}, "hidden"),
    ("{ documents { edges { node { id } } } }", {}, "hidden"),
    (
        "query($c: UUID!) { documents(caseId: $c) { edges { node { id } } } }",
        {"c": "case"},
        "hidden",
    ),
    ('{ search(query: "merger", mode: KEYWORD) { chunkId } }', {}, "hidden"),
    (
        'query($c: UUID!) { search(query: "merger", caseId: $c) { chunkId } }',
        {"c": "case"},
        "hidden",
    ),
    ("mutation($id: UUID!) { reprocessDocument(id: $id) { id } }", {"id": "ready"}, "NOT_FOUND"),
    ("mutation($id: UUID!) { cancelDocument(id: $id) { id } }", {"id": "queued"}, "NOT_FOUND"),
    ("mutation($id: UUID!) { deleteDocument(id: $id) }", {"id": "ready"}, "NOT_FOUND"),
    ("mutation($id: UUID!) { deleteCase(id: $id) }", {"id": "case"}, "NOT_FOUND"),
    (
        "mutation($id: UUID!) { createProgressStream(documentId: $id) { url } }",
        {"id": "ready"},
        "NOT_FOUND",
    ),
]


def _resolve(variables: dict[str, str], victim: Victim) -> dict[str, Any]:
    ids = {"case": victim.case_id, "ready": victim.ready_id, "queued": victim.queued_id}
    return {name: ids[value] for name, value in variables.items()}


def _mentions(data: Any, victim: Victim) -> bool:
    text = json.dumps(data)
    return any(value in text for value in (victim.case_id, victim.ready_id, victim.queued_id))


async def _victim_untouched(sessions: SessionFactory, victim: Victim) -> None:
    async with sessions() as session:
        ready = await session.get(Document, uuid.UUID(victim.ready_id))
        queued = await session.get(Document, uuid.UUID(victim.queued_id))
        chunks = await session.scalars(
            select(DocumentChunk).where(DocumentChunk.document_id == uuid.UUID(victim.ready_id))
        )
        assert ready is not None
        assert ready.status is ProcessingStatus.READY
        assert queued is not None
        assert queued.status is ProcessingStatus.QUEUED
        assert len(list(chunks)) == 1


@pytest.mark.parametrize(("operation", "variables", "expected"), QUERIES)
async def test_a_key_of_one_organization_cannot_reach_another(
    api: Api,
    victim: Victim,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
    operation: str,
    variables: dict[str, str],
    expected: str,
) -> None:
    acme = await tenant("Acme LLP")
    await create_case(api, acme.key, "Acme's own case")  # A has data of its own
    if expected == "hidden":
        data = await execute(api, acme.key, operation, **_resolve(variables, victim))
        assert not _mentions(data, victim), data
    else:
        with pytest.raises(GraphQLFailed) as failure:
            await execute(api, acme.key, operation, **_resolve(variables, victim))
        assert failure.value.code == expected
    await _victim_untouched(sessions, victim)


async def test_uploads_into_another_organizations_case_are_refused(
    api: Api, victim: Victim, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    with pytest.raises(GraphQLFailed) as failure:
        await upload(api, acme.key, victim.case_id, b"plain text notes", "notes.txt")
    assert failure.value.code == "NOT_FOUND"
    many = """
    mutation($c: UUID!, $files: [Upload!]!) {
      uploadDocuments(caseId: $c, files: $files) { errorCode document { id } }
    }
    """
    data = await execute(
        api, acme.key, many, upload=True, c=victim.case_id, files=[file(b"notes", "n.txt")]
    )
    assert data["uploadDocuments"] == [{"errorCode": "NOT_FOUND", "document": None}]
    async with sessions() as session:
        count = len(list(await session.scalars(select(Document))))
    assert count == 2  # the victim's two documents only


@pytest.mark.parametrize(
    "operation",
    [
        "subscription($id: UUID!) { documentProgress(documentId: $id) { seq } }",
        "subscription($id: UUID!) { caseProgress(caseId: $id) { seq } }",
    ],
)
async def test_subscriptions_to_another_organization_are_refused(
    api: Api, victim: Victim, tenant: Callable[[str], Awaitable[Tenant]], operation: str
) -> None:
    acme = await tenant("Acme LLP")
    target = victim.ready_id if "documentProgress" in operation else victim.case_id
    with pytest.raises(GraphQLFailed) as failure:
        await subscribe(api, acme.key, operation, id=target)
    assert failure.value.code == "NOT_FOUND"
    assert api.services.hub.subscriber_count == 0


async def test_plain_sse_of_another_organization_is_refused(
    api: Api, victim: Victim, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    own = await upload(api, acme.key, case_id, make_pdf(["Our own memo."]), "memo.pdf")
    stream = await execute(
        api,
        acme.key,
        "mutation($id: UUID!) { createProgressStream(documentId: $id) { token } }",
        id=own,
    )
    token = stream["createProgressStream"]["token"]
    path = f"/api/documents/{victim.ready_id}/progress"
    async with httpx.AsyncClient(base_url=api.url) as client:
        by_key = await client.get(path, headers={"Authorization": f"Bearer {acme.key}"})
        by_token = await client.get(path, params={"token": token})
        forged = await client.get(path, params={"token": token.replace(".", "x.", 1)})
        anonymous = await client.get(path)
    assert by_key.status_code == 404
    assert by_key.json()["error"]["code"] == "NOT_FOUND"
    assert by_token.status_code == 401  # issued for another document
    assert forged.status_code == 401
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_requests_without_a_valid_key_are_unauthenticated(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    for key in (None, "lxk_not-a-key"):
        with pytest.raises(GraphQLFailed) as failure:
            await execute(api, key, "{ cases { edges { node { id } } } }")
        assert failure.value.code == "UNAUTHENTICATED"

    assert await execute(api, acme.key, "{ cases { edges { cursor } } }") == {
        "cases": {"edges": []}
    }
    async with sessions.begin() as session:
        await session.execute(update(ApiKey).values(revoked_at=datetime.now(UTC)))
    with pytest.raises(GraphQLFailed) as failure:
        await execute(api, acme.key, "{ cases { edges { cursor } } }")
    assert failure.value.code == "UNAUTHENTICATED"


async def test_websocket_without_a_valid_key_is_closed_with_4403(api: Api) -> None:
    for payload in ({}, {"authorization": "Bearer lxk_not-a-key"}):
        async with websockets.connect(api.ws_url, subprotocols=WS_PROTOCOLS) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_the_key_is_stored_only_as_a_hash(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    async with sessions() as session:
        stored = await session.scalar(select(ApiKey))
    assert stored is not None
    assert acme.key not in (stored.secret_hash, stored.prefix)
    assert acme.key.startswith(stored.prefix)


def test_stream_tokens_expire_and_are_bound_to_their_secret_and_document() -> None:
    principal = Principal(organization_id=uuid.uuid4(), api_key_id=uuid.uuid4())
    document_id = uuid.uuid4()
    tokens = StreamTokens(b"secret", ttl_seconds=60)
    token, expires = tokens.issue(principal, document_id)
    assert 59 < expires - time.time() <= 60
    assert tokens.verify(token, document_id) == principal
    with pytest.raises(Unauthenticated, match="another document"):
        tokens.verify(token, uuid.uuid4())
    with pytest.raises(Unauthenticated, match="invalid"):
        StreamTokens(b"other secret", ttl_seconds=60).verify(token, document_id)
    with pytest.raises(Unauthenticated, match="expired"):
        StreamTokens(b"secret", ttl_seconds=-1).verify(token, document_id)
