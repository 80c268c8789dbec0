"""A real uvicorn server running the API, a real arq worker, and GraphQL clients (gql)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from arq.worker import Worker
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.file_upload import FileVar
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.types import ASGIApp
from websockets.typing import Subprotocol

from lexintel_api.app import create_app
from lexintel_api.auth import create_api_key
from lexintel_api.services import Services
from lexintel_api.websocket import WS_PROTOCOL
from lexintel_core.db import SessionFactory
from lexintel_core.embedded_servers import free_port
from lexintel_core.settings import Settings
from lexintel_jobs.worker import worker_options

GRAPHQL_TRANSPORT_WS = "graphql-transport-ws"
WS_PROTOCOLS = [Subprotocol(GRAPHQL_TRANSPORT_WS)]
PREFLIGHT = {"GraphQL-Require-Preflight": "1"}


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "embedding_provider": "hashing",
            "max_upload_bytes": 512 * 1024,
            "retry_delays_seconds": [0.2],
            "retry_jitter": 0.0,
            "worker_heartbeat_seconds": 0.5,
            "worker_takeover_seconds": 3.0,
            "api_connection_init_timeout_seconds": 1.0,
        }
    )


@dataclass
class Api:
    app: Starlette
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, wrap: Callable[[ASGIApp], ASGIApp] = lambda app: app
) -> AsyncIterator[Api]:
    """The app (inside `wrap`, to watch what the server receives) under uvicorn on a free
    port, for the duration of the block."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            wrap(app),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            # As the shipped commands run it: X-Forwarded-For is the app's to trust
            # (LEXINTEL_API_TRUSTED_PROXIES), not uvicorn's.
            proxy_headers=False,
            ws=WS_PROTOCOL,
            ws_per_message_deflate=False,
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield Api(app, port)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api(api_settings: Settings, sessions: SessionFactory, redis: Redis) -> AsyncIterator[Api]:
    # `sessions` and `redis` empty the database and Redis after the test.
    async with serve(api_settings) as running:
        yield running


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """A real arq worker (not burst) taking jobs for the duration of the block."""
    options: dict[str, Any] = {**worker_options(settings), "handle_signals": False}
    worker = Worker(**options)
    task = asyncio.create_task(worker.main())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Let jobs that are still recording their result finish: arq's close() cancels them,
        # and a job cancelled inside its shielded finish makes close() raise half-way.
        async with asyncio.timeout(30):
            while any(not job.done() for job in worker.tasks.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        with warnings.catch_warnings():  # arq calls redis-py's deprecated close()
            warnings.simplefilter("ignore", DeprecationWarning)
            await worker.close()


@pytest.fixture
async def worker(api_settings: Settings, api: Api) -> AsyncIterator[Worker]:
    async with running_worker(api_settings) as running:
        yield running


@dataclass(frozen=True)
class Tenant:
    organization_id: uuid.UUID
    key: str


@pytest.fixture
def tenant(sessions: SessionFactory) -> Callable[[str], Awaitable[Tenant]]:
    async def make(name: str) -> Tenant:
        async with sessions.begin() as session:
            api_key, secret = await create_api_key(session, name)
        return Tenant(api_key.organization_id, secret)

    return make


class GraphQLFailed(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @property
    def code(self) -> str | None:
        code = (self.errors[0].get("extensions") or {}).get("code")
        return str(code) if code is not None else None


def http_client(api: Api, key: str | None, **headers: str) -> Client:
    all_headers = {**PREFLIGHT, **headers}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    return Client(
        transport=HTTPXAsyncTransport(url=api.graphql_url, headers=all_headers, timeout=30)
    )


def ws_client(api: Api, key: str | None) -> Client:
    payload = {"authorization": f"Bearer {key}"} if key is not None else {}
    return Client(
        transport=WebsocketsTransport(
            url=api.ws_url, init_payload=payload, subprotocols=[GRAPHQL_TRANSPORT_WS]
        )
    )


async def execute(
    api: Api, key: str | None, query: str, upload: bool = False, **variables: Any
) -> dict[str, Any]:
    """Run one operation over HTTP; GraphQLFailed carries the errors."""
    async with http_client(api, key) as session:
        try:
            data: dict[str, Any] = await session.execute(
                GraphQLRequest(query, variable_values=variables), upload_files=upload
            )
            return data
        except TransportQueryError as exc:
            raise GraphQLFailed(list(exc.errors or [])) from exc


async def subscribe(api: Api, key: str, query: str, **variables: Any) -> list[dict[str, Any]]:
    """Every result of a subscription over graphql-transport-ws, until it completes."""
    async with ws_client(api, key) as session:
        try:
            return [
                result
                async for result in session.subscribe(
                    GraphQLRequest(query, variable_values=variables)
                )
            ]
        except TransportQueryError as exc:
            raise GraphQLFailed(list(exc.errors or [])) from exc


def file(content: bytes, filename: str) -> FileVar:
    return FileVar(io.BytesIO(content), filename=filename)


CREATE_CASE = "mutation($name: String!) { createCase(name: $name) { id name } }"
UPLOAD = """
mutation($caseId: UUID!, $file: Upload!) {
  uploadDocument(caseId: $caseId, file: $file) { duplicate document { id status filename } }
}
"""
PROGRESS = """
subscription($id: UUID!, $after: Int! = 0) {
  documentProgress(documentId: $id, afterSeq: $after) { seq status stage percent errorCode }
}
"""


async def create_case(api: Api, key: str, name: str = "Doe v. Roe") -> str:
    data = await execute(api, key, CREATE_CASE, name=name)
    return str(data["createCase"]["id"])


async def upload(api: Api, key: str, case_id: str, content: bytes, filename: str) -> str:
    data = await execute(
        api, key, UPLOAD, upload=True, caseId=case_id, file=file(content, filename)
    )
    return str(data["uploadDocument"]["document"]["id"])
