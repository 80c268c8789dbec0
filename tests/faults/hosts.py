"""A LexIntel cluster on simulated hosts (tests/faults/netns.py): a data host running
PostgreSQL (+pgvector) and Redis on its own address, an API host running
`uvicorn lexintel_api.app:app`, worker hosts running `lexintel worker`, each configured only
through `LEXINTEL_*` environment variables that point at the data host, as a deployment
would be. The test itself talks from a client host: GraphQL over HTTP and WebSocket to the
API host, SQL to the data host (to check what was stored).

Client code runs in an event loop of its own inside the client host's namespace
(`Cluster.run(coroutine)`); everything else is a process on its host.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from gql import Client, GraphQLRequest
from gql.transport.file_upload import FileVar
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from lexintel_api.auth import create_api_key
from lexintel_api.websocket import WS_PROTOCOL
from lexintel_core import migrate
from lexintel_core.embedded_servers import EmbeddedPostgres, redis_server_binary, wait_for_port
from lexintel_core.jobs import JobName, ProcessDocument, job_id
from lexintel_core.progress import read_snapshot
from lexintel_core.settings import Settings
from tests.faults.netns import SUBNET, Host, Network
from tests.workers import environment_without_settings

T = TypeVar("T")

POSTGRES_PORT = 5432
REDIS_PORT = 6379
API_PORT = 8000
BIN = Path(sys.executable).parent
LEXINTEL = shutil.which("lexintel", path=str(BIN)) or str(BIN / "lexintel")

PREFLIGHT = {"GraphQL-Require-Preflight": "1"}
CREATE_CASE = "mutation($name: String!) { createCase(name: $name) { id } }"
UPLOAD = """
mutation($caseId: UUID!, $file: Upload!) {
  uploadDocument(caseId: $caseId, file: $file) { document { id } }
}
"""
PROGRESS = """
subscription($id: UUID!) {
  documentProgress(documentId: $id) { documentId seq status stage percent }
}
"""
CASE_PROGRESS = """
subscription($id: UUID!) {
  caseProgress(caseId: $id) { documentId seq status stage percent }
}
"""


# How arq's log lines mark the end of a job's run: done, retried or cancelled, failed, aborted.
ENDINGS = (" ← ", " ↻ ", " ! ", " ⊘ ")


def process_job_id(document_id: str) -> str:
    """The arq job id of a freshly uploaded document's `document.process` job."""
    return job_id(JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=uuid.UUID(document_id)))


@dataclass
class WorkerHost:
    host: Host
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def name(self) -> str:
        return self.host.name

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def has_run(self, job: str) -> bool:
        """Whether arq on this worker started job `job` (its "→ <job id>:<function>" line)."""
        return f"→ {job}:" in self.output()

    def ended(self, job: str) -> str | None:
        """arq's line for the end of this worker's run of job `job` (done, failed, retried
        or cancelled), or None while it has not ended."""
        for line in self.output().splitlines():
            if f" {job}:" in line and any(mark in line for mark in ENDINGS):
                return line
        return None

    def has_ended(self, job: str) -> bool:
        return self.ended(job) is not None

    async def wait_ended(self, job: str, within: float) -> str:
        deadline = time.monotonic() + within
        while (line := self.ended(job)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {self.name} did not end its run of {job} within {within}s:\n"
                    f"{self.output()[-3000:]}"
                )
            await asyncio.sleep(0.1)
        return line

    def wait_started(self, within: float) -> None:
        deadline = time.monotonic() + within
        while "Starting worker for" not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} not started after {within}s")
            time.sleep(0.1)


@dataclass
class Cluster:
    network: Network
    data: Host
    api: Host
    client: Host
    root: Path
    worker_env: dict[str, Any]
    key: str = ""
    postgres: EmbeddedPostgres | None = None
    workers: list[WorkerHost] = field(default_factory=list)
    _count: int = 0

    def close(self) -> None:
        """Remove every host (killing its processes) and the network; PostgreSQL is shut
        down first, so that it removes its shared memory."""
        try:
            self.remove_workers()
        finally:
            try:
                if self.postgres is not None:
                    self.data.call(self.postgres.stop, "immediate")
            finally:
                self.network.close()

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@{self.data.address}:{POSTGRES_PORT}/lexintel"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.data.address}:{REDIS_PORT}/0"

    @property
    def api_url(self) -> str:
        return f"http://{self.api.address}:{API_PORT}"

    def env(self, name: str, **values: Any) -> dict[str, str]:
        """The environment of a LexIntel process on host `name`: only `LEXINTEL_*` settings."""
        settings = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "DATA_DIR": self.root / name,
            "API_SECRET_KEY": "the-same-secret-on-every-api-host-0123456789",
            **values,
        }
        env = environment_without_settings()
        env.update({f"LEXINTEL_{key}": str(value) for key, value in settings.items()})
        return env

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a client coroutine (its own event loop) on the client host."""
        result: T = self.client.call(asyncio.run, coroutine)
        return result

    # -- worker hosts ---------------------------------------------------------------------

    def start_worker(self, **overrides: Any) -> WorkerHost:
        """A new worker host running `lexintel worker` (with settings `overrides`)."""
        self._count += 1
        host = self.network.add_host(f"w{self._count}")
        log = self.root / f"worker-{host.name}.log"
        env = self.env(host.name, **{**self.worker_env, **overrides})
        process = host.start([LEXINTEL, "worker"], env, log)
        worker = WorkerHost(host, log, process)
        self.workers.append(worker)
        return worker

    def remove_workers(self) -> None:
        """Remove every worker host and end the database sessions they left behind (a frozen
        or cut-off host's sessions would otherwise live until TCP keepalive)."""
        addresses = [worker.host.address for worker in self.workers]
        try:
            for worker in self.workers:
                self.network.remove_host(worker.host)
        finally:
            self.workers.clear()
            if addresses:
                self.run(self._end_sessions(addresses))

    async def _end_sessions(self, addresses: list[str]) -> None:
        async with self.database() as engine, engine.begin() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE host(client_addr) = ANY(:addresses)"
                ),
                {"addresses": addresses},
            )

    # -- client ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(self.database_url, poolclass=NullPool)
        try:
            yield engine
        finally:
            await engine.dispose()

    def _graphql_client(self) -> Client:
        headers = {**PREFLIGHT, "Authorization": f"Bearer {self.key}"}
        return Client(
            transport=HTTPXAsyncTransport(
                url=f"{self.api_url}/graphql", headers=headers, timeout=60
            )
        )

    async def execute(self, query: str, upload: bool = False, **variables: Any) -> dict[str, Any]:
        async with self._graphql_client() as session:
            result: dict[str, Any] = await session.execute(
                GraphQLRequest(query, variable_values=variables), upload_files=upload
            )
            return result

    async def create_case(self, name: str) -> str:
        return str((await self.execute(CREATE_CASE, name=name))["createCase"]["id"])

    async def upload(self, case_id: str, content: bytes, filename: str) -> str:
        data = await self.execute(
            UPLOAD,
            upload=True,
            caseId=case_id,
            file=FileVar(io.BytesIO(content), filename=filename),
        )
        return str(data["uploadDocument"]["document"]["id"])

    def watch(self, document_id: str) -> Watcher:
        """A graphql-transport-ws subscription to the document's progress, started now."""
        return Watcher(self, PROGRESS, document_id)

    def watch_case(self, case_id: str) -> Watcher:
        """A graphql-transport-ws subscription to the progress of a case's documents."""
        return Watcher(self, CASE_PROGRESS, case_id)

    async def document(self, document_id: str) -> DocumentState:
        async with self.database() as engine, engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT status, attempts, page_count, updated_at, finished_at, "
                        "error_message FROM documents WHERE id = :id"
                    ),
                    {"id": document_id},
                )
            ).one()
            chunks = (
                await connection.execute(
                    text(
                        "SELECT id, ordinal, created_at, embedding_model, "
                        "embedding IS NOT NULL FROM document_chunks "
                        "WHERE document_id = :id ORDER BY ordinal, id"
                    ),
                    {"id": document_id},
                )
            ).all()
        return DocumentState(
            status=str(row.status),
            attempts=row.attempts,
            page_count=row.page_count,
            row=tuple(row),
            chunks=[tuple(chunk) for chunk in chunks],
        )

    async def wait_status(
        self, document_id: str, statuses: set[str], within: float
    ) -> DocumentState | None:
        """The document once its status is one of `statuses`; None if not within the time."""
        deadline = time.monotonic() + within
        while True:
            state = await self.document(document_id)
            if state.status in statuses:
                return state
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.2)

    @contextlib.asynccontextmanager
    async def redis(self) -> AsyncIterator[Redis]:
        client = Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            yield client
        finally:
            await client.aclose()

    async def snapshot(self, document_id: str) -> dict[str, Any] | None:
        """The document's progress snapshot in Redis (its last published event)."""
        async with self.redis() as redis:
            event = await read_snapshot(redis, uuid.UUID(document_id))
        return None if event is None else event.model_dump(mode="json")

    async def published(self, document_ids: list[str]) -> int:
        """Progress events published so far for these documents (their seqs added up)."""
        async with self.redis() as redis:
            events = [await read_snapshot(redis, uuid.UUID(i)) for i in document_ids]
        return sum(event.seq for event in events if event is not None)

    async def ready_count(self, document_ids: list[str]) -> int:
        async with self.database() as engine, engine.connect() as connection:
            count = await connection.scalar(
                text("SELECT count(*) FROM documents WHERE id = ANY(:ids) AND status = 'READY'"),
                {"ids": [uuid.UUID(i) for i in document_ids]},
            )
        return int(count or 0)

    async def readyz(self, limit: float) -> tuple[int | None, float, str]:
        """(status code, or None without an answer within `limit` seconds; seconds the
        answer took; body)."""
        started = time.monotonic()
        try:
            async with httpx.AsyncClient(base_url=self.api_url, timeout=limit) as http:
                response = await http.get("/readyz")
        except httpx.TimeoutException:
            return None, time.monotonic() - started, "no answer"
        except httpx.TransportError as exc:
            return None, time.monotonic() - started, f"{type(exc).__name__}: {exc}"
        return response.status_code, time.monotonic() - started, response.text


@dataclass
class DocumentState:
    status: str
    attempts: int
    page_count: int | None
    row: tuple[Any, ...]
    chunks: list[tuple[Any, ...]]

    @property
    def ordinals(self) -> list[int]:
        return [chunk[1] for chunk in self.chunks]


class Watcher:
    """Every event of one document's subscription, each with the (monotonic) time it came."""

    def __init__(self, cluster: Cluster, query: str, subject: str) -> None:
        self.cluster = cluster
        self.query = query
        self.subject = subject
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        transport = WebsocketsTransport(
            url=f"ws://{self.cluster.api.address}:{API_PORT}/graphql",
            init_payload={"authorization": f"Bearer {self.cluster.key}"},
            subprotocols=["graphql-transport-ws"],
        )
        async with Client(transport=transport) as session:
            request = GraphQLRequest(self.query, variable_values={"id": self.subject})
            async for result in session.subscribe(request):
                (event,) = result.values()
                self.events.append((time.monotonic(), event))

    @property
    def last(self) -> dict[str, Any] | None:
        return self.events[-1][1] if self.events else None

    def since(self, moment: float) -> list[tuple[float, dict[str, Any]]]:
        return [(at, event) for at, event in self.events if at >= moment]

    async def first_since(self, moment: float, within: float) -> float | None:
        """When the first event at or after `moment` came (waiting up to `within` seconds
        from `moment`); None if none came."""
        while not (events := self.since(moment)):
            if time.monotonic() > moment + within or self.task.done():
                return None
            await asyncio.sleep(0.02)
        return events[0][0]

    async def until(self, condition: Callable[[dict[str, Any]], bool], within: float) -> None:
        deadline = time.monotonic() + within
        while not any(condition(event) for _, event in self.events):
            if self.task.done():
                self.task.result()
                raise AssertionError(f"subscription ended without that: {self.events[-3:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no such event within {within}s; last: {self.last} of {len(self.events)}"
                )
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def start_cluster(root: Path, worker_env: dict[str, Any]) -> Cluster:
    """Network, data host (PostgreSQL + Redis), API host, client host; migrated, with an API
    key. On failure everything made so far is removed."""
    network = Network()
    try:
        data = network.add_host("data")
        api = network.add_host("api")
        client = network.add_host("client")
    except BaseException:
        network.close()
        raise
    cluster = Cluster(network, data, api, client, root, worker_env)
    try:
        postgres = EmbeddedPostgres(
            root / "postgres", port=POSTGRES_PORT, host=data.address, durable=False
        )
        cluster.postgres = postgres
        data.call(postgres.start)
        # initdb trusts only 127.0.0.1: let the other hosts in, then restart to read it.
        with (postgres.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
        data.call(postgres.stop)
        data.call(postgres.start)
        data.call(postgres.create_database, "lexintel")
        # Not EmbeddedRedis: Redis' protected mode refuses clients from other hosts.
        (root / "redis").mkdir()
        redis_server = [
            str(redis_server_binary()), "--bind", data.address, "--port", str(REDIS_PORT),
            "--protected-mode", "no", "--save", "", "--appendonly", "no",
            "--dir", str(root / "redis"),
        ]  # fmt: skip
        data.start(redis_server, {}, root / "redis.log")
        data.call(wait_for_port, data.address, REDIS_PORT, 30)

        settings = Settings(
            _env_file=None,
            database_url=cluster.database_url,
            redis_url=cluster.redis_url,
            data_dir=root / "client",
        )
        client.call(migrate.upgrade, settings)
        cluster.key = cluster.run(_create_key(cluster))

        # As docker/compose.yaml runs it.
        uvicorn = [
            sys.executable, "-m", "uvicorn", "lexintel_api.app:app",
            "--host", api.address, "--port", str(API_PORT),
            "--no-proxy-headers", "--ws", WS_PROTOCOL, "--ws-per-message-deflate", "false",
            "--log-level", "warning",
        ]  # fmt: skip
        api.start(uvicorn, cluster.env("api", **worker_env), root / "api.log")
        cluster.run(_until_serving(cluster, root / "api.log", within=90))
        return cluster
    except BaseException:
        cluster.close()
        raise


async def _create_key(cluster: Cluster) -> str:
    async with cluster.database() as engine, async_sessionmaker(engine).begin() as session:
        _, key = await create_api_key(session, "Hosts & Partners LLP")
    return key


async def _until_serving(cluster: Cluster, log: Path, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=2) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the API host is not ready after {within}s:\n{log.read_text()[-3000:]}"
                )
            await asyncio.sleep(0.2)
