"""Load test: concurrent uploads of multi-page PDFs, many live progress subscribers, real processes.

    python bench/load.py [--documents 200] [--clients 20] [--subscribers 1000] [--workers 2]
                         [--pages 3 8] [--embedding hashing] [--per-connection 25]
                         [--database-url URL --redis-url URL] [--output PATH] [--log-dir DIR]

Starts a throwaway embedded PostgreSQL 18 + pgvector and Redis (unless --database-url and
--redis-url name servers to use), migrates, creates an API key, then runs the API
(`python -m uvicorn lexintel_api.app:app`) and N workers (`arq lexintel_jobs.worker.WorkerSettings`)
as separate processes configured through `LEXINTEL_*` variables (other `LEXINTEL_*` variables of
this environment pass through to them). --clients concurrent HTTP clients upload --documents
generated text PDFs (distinct content, --pages pages each) into one case with the multipart
`uploadDocument` mutation; as each document is uploaded, its share of --subscribers
`documentProgress` subscriptions attach over graphql-transport-ws WebSockets (--per-connection
subscriptions per connection, spread round-robin, so a document's watchers sit on different
connections). psutil samples the RSS of the API and of each worker with its extraction child
processes every 0.2 s.

Reports documents/min and pages/s (first upload sent to the last document's finished_at),
upload latency, progress latency (receipt time minus the event's `timestamp`, stamped by the
publisher; counted only for events published after the subscription was sent, not replayed
snapshots; also for the events after each subscriber's first), the time from sending a
subscription to its first event (the server's subscription setup), subscribers that saw a
terminal event, seq gaps (events the hub dropped for a slow subscriber), errors (upload
failures, subscription errors, documents not READY, page counts that differ from the generated
ones), peak RSS and CPU seconds. To tell where latency comes from it also probes GET /healthz
every 0.25 s and measures this script's own event-loop lag. Prints a table and writes
bench/results/load.json; exits 1 when there is any error. With errors and no --log-dir, the
API and worker logs are copied next to the JSON (<output stem>-logs/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import io
import itertools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import psutil  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import LETTER  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from lexintel_api.auth import create_api_key
from lexintel_core import migrate
from lexintel_core.db import SessionFactory, create_session_factory, engine_for
from lexintel_core.embedded_servers import EmbeddedPostgres, EmbeddedRedis, free_port
from lexintel_core.models import Document
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STARTED = time.perf_counter()
TERMINAL = {"READY", "FAILED", "CANCELLED"}
SAMPLE_SECONDS = 0.2
READY_TIMEOUT_SECONDS = 180
STOP_SECONDS = 20
CREATE_CASE = "mutation($name: String!) { createCase(name: $name) { id } }"
UPLOAD = """
mutation($caseId: UUID!, $file: Upload!) {
  uploadDocument(caseId: $caseId, file: $file) { duplicate document { id status } }
}
"""
PROGRESS = """
subscription($id: UUID!) {
  documentProgress(documentId: $id) { seq status stage percent timestamp errorCode }
}
"""
_WORDS = """
agreement party shall court section contract claim plaintiff defendant notice lease tenant
landlord premises payment term breach damages liability obligation rights counsel order motion
judgment evidence witness testimony exhibit discovery deposition settlement indemnify warranty
representation covenant default remedy termination assignment consent jurisdiction venue
arbitration mediation dispute statute regulation compliance confidential disclosure property
title deed mortgage lien easement escrow closing purchase seller buyer employer employee wages
negligence tort duty causation injury insurance policy coverage premium insurer subrogation
fraud estoppel waiver appeal petition complaint answer counterclaim subpoena hearing trial jury
verdict custody guardian trust estate executor probate beneficiary fiduciary partnership
corporation shareholder director merger securities dividend bankruptcy creditor debtor trustee
collateral guaranty promissory interest principal invoice delivery goods services acceptance
inspection rejection severability amendment affidavit declaration stipulation injunction
sanctions contempt privilege attorney redaction interrogatories admissions expert valuation
patent trademark copyright infringement license royalty zoning permit variance nuisance trespass
"""
VOCABULARY = _WORDS.split()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- documents ------------------------------------------------------------------------------


@dataclass
class Pdf:
    index: int
    filename: str
    content: bytes
    pages: int


def make_pdf(index: int, pages: int, rng: random.Random) -> bytes:
    """A text PDF of `pages` pages of legal-ish sentences; the headers make every one distinct."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=LETTER)
    for page in range(1, pages + 1):
        canvas.setFont("Helvetica", 10)
        canvas.drawString(72, 730, f"Load test exhibit {index}, page {page} of {pages}")
        y = 710
        for _ in range(40):
            words = rng.choices(VOCABULARY, k=rng.randint(8, 12))
            canvas.drawString(72, y, " ".join(words).capitalize() + ".")
            y -= 14
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def make_documents(count: int, min_pages: int, max_pages: int, seed: int) -> list[Pdf]:
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic content, not secrets
    documents = []
    for index in range(count):
        pages = rng.randint(min_pages, max_pages)
        content = make_pdf(index, pages, rng)
        documents.append(Pdf(index, f"exhibit-{index:04d}.pdf", content, pages))
    return documents


# -- processes ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it (a graceful stop) when this script dies, even by
    SIGKILL. Children run in their own session so that a Ctrl-C reaches only this script,
    which then stops them in order."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Processes:
    """The API and worker processes, each logging to its own file under `log_dir`."""

    def __init__(self, log_dir: Path, env: dict[str, str], cwd: Path) -> None:
        self.log_dir, self.env, self.cwd = log_dir, env, cwd
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log_file = (self.log_dir / f"{name}.log").open("wb")
        self._logs.append(log_file)
        return subprocess.Popen(  # noqa: S603 - this interpreter's own tools
            command,
            env=self.env,
            cwd=self.cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # before any thread is started
        )

    def start_api(self, port: int) -> None:
        command = [sys.executable, "-m", "uvicorn", "lexintel_api.app:app"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        self.api = self._spawn("api", command)

    def start_workers(self, count: int) -> None:
        arq = shutil.which("arq", path=str(BIN))
        if arq is None:
            raise SystemExit(f"no arq executable next to {sys.executable}")
        for index in range(count):
            self.workers.append(
                self._spawn(f"worker-{index}", [arq, "lexintel_jobs.worker.WorkerSettings"])
            )

    def check_alive(self) -> None:
        for name, process in [("API", self.api), *(("worker", w) for w in self.workers)]:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the {name} process exited with {process.returncode}")

    def stop(self) -> None:
        """Workers first (SIGTERM: arq finishes or hands back its jobs), then the API; SIGKILL
        whatever is still running after STOP_SECONDS, children of the workers included."""
        for group in (self.workers, [self.api] if self.api is not None else []):
            descendants: list[psutil.Process] = []
            for process in group:
                with contextlib.suppress(psutil.Error):
                    descendants += psutil.Process(process.pid).children(recursive=True)
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + STOP_SECONDS
            for process in group:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            _, alive = psutil.wait_procs(descendants, timeout=5)
            for child in alive:
                with contextlib.suppress(psutil.Error):
                    child.kill()
        for log_file in self._logs:
            log_file.close()


class RssSampler(threading.Thread):
    """Samples resident memory every SAMPLE_SECONDS: the API process (and any children) and
    each worker with its child processes (the extraction pool). RSS counts pages shared
    between a worker and its forked children once per process."""

    def __init__(self, api_pid: int, worker_pids: Sequence[int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.api = psutil.Process(api_pid)
        self.workers = [psutil.Process(pid) for pid in worker_pids]
        self.stopped = threading.Event()
        self.samples = 0
        self.api_peak = self.workers_sum_peak = self.worker_peak = 0
        self.worker_children_peak = 0
        # CPU seconds (user + system) of each tree at the last sample, reaped children included.
        self.api_cpu = self.workers_cpu = 0.0

    @staticmethod
    def tree(process: psutil.Process) -> tuple[int, int, float]:
        """RSS of a process plus its descendants, how many descendants there are, and the CPU
        seconds of them all."""
        rss, cpu, children = 0, 0.0, []
        with contextlib.suppress(psutil.Error):
            rss = process.memory_info().rss
            times = process.cpu_times()
            cpu = times.user + times.system + times.children_user + times.children_system
            children = process.children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                rss += child.memory_info().rss
                times = child.cpu_times()
                cpu += times.user + times.system
        return rss, len(children), cpu

    def sample(self) -> None:
        api_rss, _, api_cpu = self.tree(self.api)
        self.api_peak = max(self.api_peak, api_rss)
        self.api_cpu = max(self.api_cpu, api_cpu)
        trees = [self.tree(worker) for worker in self.workers]
        self.workers_sum_peak = max(self.workers_sum_peak, sum(rss for rss, _, _ in trees))
        self.worker_peak = max([self.worker_peak, *(rss for rss, _, _ in trees)])
        self.worker_children_peak = max([self.worker_children_peak, *(n for _, n, _ in trees)])
        self.workers_cpu = max(self.workers_cpu, sum(cpu for _, _, cpu in trees))
        self.samples += 1

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def wait_ready(url: str, processes: Processes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=10) as client:
        while True:
            processes.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}/readyz did not answer 200 in {READY_TIMEOUT_SECONDS}s")
            time.sleep(0.2)


# -- subscribers ----------------------------------------------------------------------------


@dataclass
class Subscriber:
    id: str
    document_id: str
    sent: float = 0.0  # wall-clock time the subscribe message was sent
    first: float | None = None  # wall-clock time the first event arrived
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, live events only
    later_latencies: list[float] = field(default_factory=list)  # live events after the first
    replayed: int = 0  # events published before the subscription was sent (the snapshot)
    terminal: str | None = None
    completed: bool = False
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_next(self, payload: dict[str, Any], received: float) -> None:
        if payload.get("errors"):
            self.fail(f"errors in a result: {payload['errors']}")
            return
        event = (payload.get("data") or {}).get("documentProgress")
        if not event:
            self.fail(f"a result without an event: {payload}")
            return
        if self.seqs and event["seq"] <= self.seqs[-1]:
            self.fail(f"seq {event['seq']} after {self.seqs[-1]}")
        self.seqs.append(event["seq"])
        stamped = datetime.fromisoformat(event["timestamp"]).timestamp()
        if stamped >= self.sent:
            self.latencies.append(received - stamped)
            if self.first is not None:
                self.later_latencies.append(received - stamped)
        else:
            self.replayed += 1
        if self.first is None:
            self.first = received
        if event["status"] in TERMINAL:
            self.terminal = event["status"]

    def complete(self) -> None:
        self.completed = True
        if self.terminal is None:
            self.fail("completed without a terminal event")
        self.done.set()

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self.done.set()

    @property
    def gaps(self) -> int:
        """Events skipped between the first and the last one received."""
        return sum(b - a - 1 for a, b in itertools.pairwise(self.seqs) if b > a + 1)


class Connection:
    """One graphql-transport-ws connection carrying many subscriptions."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.ws: ClientConnection | None = None
        self.active: dict[str, Subscriber] = {}
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(
            self.url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            open_timeout=60,
            ping_interval=None,  # the server pings; a busy 2-core box must not trip ours
            max_size=None,
        )
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {self.key}"}}
        await self.ws.send(json.dumps(init))
        async with asyncio.timeout(60):
            ack = json.loads(await self.ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"expected connection_ack, got {ack}")
        self.reader = asyncio.create_task(self._read())

    async def subscribe(self, subscriber: Subscriber) -> None:
        assert self.ws is not None
        self.active[subscriber.id] = subscriber
        message = {
            "id": subscriber.id,
            "type": "subscribe",
            "payload": {"query": PROGRESS, "variables": {"id": subscriber.document_id}},
        }
        subscriber.sent = time.time()
        try:
            await self.ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            self.active.pop(subscriber.id, None)
            subscriber.fail(f"subscribe on a closed connection: {exc}")

    async def _read(self) -> None:
        assert self.ws is not None
        reason = "connection closed by the server"
        try:
            async for raw in self.ws:
                received = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                subscriber = self.active.get(message.get("id"))
                if subscriber is None:
                    continue
                if kind == "next":
                    subscriber.on_next(message.get("payload") or {}, received)
                elif kind == "error":
                    self.active.pop(subscriber.id)
                    subscriber.fail(f"error message: {message.get('payload')}")
                elif kind == "complete":
                    self.active.pop(subscriber.id)
                    subscriber.complete()
        except ConnectionClosed as exc:
            reason = f"connection closed: {exc}"
        finally:
            for subscriber in self.active.values():
                subscriber.fail(reason)
            self.active.clear()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


# -- the run --------------------------------------------------------------------------------


@dataclass
class Run:
    uploads_ms: list[float] = field(default_factory=list)
    upload_errors: list[str] = field(default_factory=list)
    document_ids: dict[str, Pdf] = field(default_factory=dict)
    subscribers: list[Subscriber] = field(default_factory=list)
    first_upload: float | None = None
    last_upload: float | None = None  # when the last upload's response arrived
    uploads_done: float | None = None
    peak_server_subscriptions: int = 0
    hub_reconnects: int = 0
    loop_lags: list[float] = field(default_factory=list)  # this script's event loop, seconds
    healthz: list[float] = field(default_factory=list)  # GET /healthz during the load, seconds
    started: float = 0.0  # the load phase, wall-clock
    finished: float = 0.0
    machine_cpu_percent: float = 0.0


def subscriber_shares(subscribers: int, documents: int) -> list[int]:
    """How many subscribers watch each document: as even as possible, earlier ones first."""
    base, extra = divmod(subscribers, documents)
    return [base + (index < extra) for index in range(documents)]


async def graphql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{query.split('(')[0]} failed ({response.status_code}): {body}")
    data: dict[str, Any] = body["data"]
    return data


async def upload_one(client: httpx.AsyncClient, case_id: str, pdf: Pdf, run: Run) -> str | None:
    operations = {"query": UPLOAD, "variables": {"caseId": case_id, "file": None}}
    started = time.perf_counter()
    if run.first_upload is None:
        run.first_upload = time.time()
    try:
        response = await client.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": '{"0": ["variables.file"]}'},
            files={"0": (pdf.filename, pdf.content, "application/pdf")},
        )
        run.uploads_ms.append((time.perf_counter() - started) * 1000)
        run.last_upload = time.time()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        run.upload_errors.append(f"{pdf.filename}: {type(exc).__name__}: {exc}")
        return None
    result = (body.get("data") or {}).get("uploadDocument")
    if response.status_code != 200 or body.get("errors") or not result:
        run.upload_errors.append(f"{pdf.filename}: HTTP {response.status_code}: {body}")
        return None
    if result["duplicate"]:
        run.upload_errors.append(f"{pdf.filename}: unexpectedly a duplicate")
        return None
    return str(result["document"]["id"])


async def uploader(
    api_url: str,
    key: str,
    case_id: str,
    queue: asyncio.Queue[tuple[Pdf, int]],
    connections: Sequence[Connection],
    counter: Iterator[int],
    run: Run,
) -> None:
    headers = {"Authorization": f"Bearer {key}", "GraphQL-Require-Preflight": "1"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=300) as client:
        while not queue.empty():
            pdf, watchers = queue.get_nowait()
            document_id = await upload_one(client, case_id, pdf, run)
            if document_id is None:
                continue
            run.document_ids[document_id] = pdf
            for _ in range(watchers):  # attach as soon as the document exists
                number = next(counter)
                subscriber = Subscriber(str(number), document_id)
                run.subscribers.append(subscriber)
                await connections[number % len(connections)].subscribe(subscriber)


async def watch_loop(run: Run, interval: float = 0.1) -> None:
    """How late this script's own event loop wakes up: receipt times include that lag."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(interval)
        run.loop_lags.append(time.perf_counter() - before - interval)


async def probe_api(client: httpx.AsyncClient, run: Run, interval: float = 0.25) -> None:
    """How long the API takes to answer its cheapest route: its event loop's responsiveness."""
    while True:
        started = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            await client.get("/healthz")
            run.healthz.append(time.perf_counter() - started)
        await asyncio.sleep(interval)


async def scrape_metrics(client: httpx.AsyncClient, run: Run) -> None:
    with contextlib.suppress(httpx.HTTPError):
        for line in (await client.get("/metrics")).text.splitlines():
            name, _, value = line.partition(" ")
            if name == "lexintel_api_active_subscriptions":
                run.peak_server_subscriptions = max(
                    run.peak_server_subscriptions, int(float(value))
                )
            elif name == "lexintel_api_hub_reconnects_total":
                run.hub_reconnects = int(float(value))


async def wait_for_documents(
    args: argparse.Namespace,
    run: Run,
    uploads: asyncio.Future[list[None]],
    client: httpx.AsyncClient,
    sessions: SessionFactory,
    case_id: str,
    processes: Processes,
) -> int:
    """Poll until every uploaded document is terminal (or --timeout); log progress every 10 s.
    Returns how many documents of the case are terminal."""
    deadline = time.monotonic() + args.timeout
    last_report = time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        processes.check_alive()
        await scrape_metrics(client, run)
        if uploads.done() and run.uploads_done is None:
            uploads.result()
            run.uploads_done = time.time()
            log(f"uploads done: {len(run.document_ids)} ok, {len(run.upload_errors)} failed")
        async with sessions() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(Document.status, func.count())
                        .where(Document.case_id == uuid.UUID(case_id))
                        .group_by(Document.status)
                    )
                ).all()
            )
        terminal = sum(n for status, n in statuses.items() if status.is_terminal)
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            live = sum(not s.done.is_set() for s in run.subscribers)
            summary = ", ".join(f"{status.value} {n}" for status, n in sorted(statuses.items()))
            log(f"documents: {summary or 'none yet'} | subscriptions open: {live}")
        if run.uploads_done is not None and terminal >= len(run.document_ids):
            return terminal
        if time.monotonic() > deadline:
            log(f"timed out after {args.timeout}s with {terminal} document(s) finished")
            return terminal


async def load(
    args: argparse.Namespace,
    api_url: str,
    settings: Settings,
    key: str,
    documents: list[Pdf],
    processes: Processes,
) -> tuple[Run, list[Document]]:
    run = Run()
    ws_url = api_url.replace("http://", "ws://") + "/graphql"
    headers = {"Authorization": f"Bearer {key}", "GraphQL-Require-Preflight": "1"}
    async with (
        engine_for(settings) as engine,
        httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as client,
    ):
        sessions = create_session_factory(engine)
        data = await graphql(client, CREATE_CASE, name=f"Load test {uuid.uuid4().hex[:8]}")
        case_id = data["createCase"]["id"]
        count = math.ceil(args.subscribers / args.per_connection) if args.subscribers else 0
        connections = [Connection(ws_url, key) for _ in range(count)]
        await asyncio.gather(*(connection.open() for connection in connections))
        log(f"{count} WebSocket connection(s) open; uploading with {args.clients} client(s)")
        queue: asyncio.Queue[tuple[Pdf, int]] = asyncio.Queue()
        shares = subscriber_shares(args.subscribers, len(documents))
        for pdf, watchers in zip(documents, shares, strict=True):
            queue.put_nowait((pdf, watchers))
        counter = itertools.count()
        lag = asyncio.create_task(watch_loop(run))
        probe = asyncio.create_task(probe_api(client, run))
        run.started = time.time()
        psutil.cpu_percent()  # from now on
        uploads = asyncio.gather(
            *(
                uploader(api_url, key, case_id, queue, connections, counter, run)
                for _ in range(args.clients)
            )
        )
        try:
            terminal = await wait_for_documents(
                args, run, uploads, client, sessions, case_id, processes
            )
            log(f"{terminal} document(s) finished; waiting for the subscriptions to complete")
            pending = [s.done.wait() for s in run.subscribers if not s.done.is_set()]
            if pending:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.drain):
                        await asyncio.gather(*pending)
            await scrape_metrics(client, run)
            for subscriber in run.subscribers:
                if not subscriber.done.is_set():
                    subscriber.fail(f"not complete {args.drain}s after the last document finished")
        finally:  # also on Ctrl-C: nothing left running, no exception left unretrieved
            run.finished = time.time()
            run.machine_cpu_percent = psutil.cpu_percent()
            lag.cancel()
            probe.cancel()
            uploads.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await uploads
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.gather(
                        *(connection.close() for connection in connections), return_exceptions=True
                    )
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(Document).where(Document.case_id == uuid.UUID(case_id))
                )
            )
    return run, rows


# -- report ---------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values, default=0.0),
    }


def figures(
    args: argparse.Namespace, run: Run, rows: list[Document], sampler: RssSampler
) -> dict[str, Any]:
    by_id = {str(row.id): row for row in rows}
    ready = [row for row in rows if row.status is ProcessingStatus.READY]
    not_ready = [
        f"{run.document_ids[i].filename} ({i}): "
        + (f"{by_id[i].status.value} {by_id[i].error_code}: {by_id[i].error_message}"
           if i in by_id else "no row")
        for i in run.document_ids
        if i not in by_id or by_id[i].status is not ProcessingStatus.READY
    ]  # fmt: skip
    pages_wrong = [
        f"{pdf.filename}: {pdf.pages} pages generated, {by_id[i].page_count} recorded"
        for i, pdf in run.document_ids.items()
        if i in by_id and by_id[i].status is ProcessingStatus.READY
        and by_id[i].page_count != pdf.pages
    ]  # fmt: skip
    subscription_errors = [
        f"subscriber {s.id} of {s.document_id}: {s.error}" for s in run.subscribers if s.error
    ]
    pages = sum(run.document_ids[str(row.id)].pages for row in ready)
    finished = [row.finished_at.timestamp() for row in ready if row.finished_at is not None]
    elapsed = max(finished) - run.first_upload if finished and run.first_upload else 0.0
    latencies = [value * 1000 for s in run.subscribers for value in s.latencies]
    later = [value * 1000 for s in run.subscribers for value in s.later_latencies]
    first = [(s.first - s.sent) * 1000 for s in run.subscribers if s.first is not None]
    lags = [value * 1000 for value in run.loop_lags]
    healthz = [value * 1000 for value in run.healthz]
    upload_failures = args.documents - len(run.document_ids)  # failed, or never sent (timeout)
    errors = {
        "upload_failures": upload_failures,
        "subscription_errors": len(subscription_errors),
        "documents_not_ready": len(not_ready),
        "page_count_mismatches": len(pages_wrong),
    }
    mb = 1024 * 1024
    return {
        "config": {
            "documents": args.documents,
            "clients": args.clients,
            "subscribers": args.subscribers,
            "per_connection": args.per_connection,
            "workers": args.workers,
            "pages": args.pages,
            "embedding": args.embedding,
            "cpus": os.cpu_count(),
        },
        "documents_ready": len(ready),
        "pages_ready": pages,
        "bytes_uploaded": sum(len(pdf.content) for pdf in run.document_ids.values()),
        "elapsed_s": elapsed,
        "upload_phase_s": (run.last_upload or 0) - (run.first_upload or 0),
        "documents_per_min": len(ready) / elapsed * 60 if elapsed else 0.0,
        "pages_per_s": pages / elapsed if elapsed else 0.0,
        "upload_ms": summary(run.uploads_ms),
        "progress_latency_ms": summary(latencies),
        "progress_latency_after_first_ms": summary(later),
        "subscribe_to_first_event_ms": summary(first),
        "client_loop_lag_ms": summary(lags),
        "healthz_ms": summary(healthz),
        "events_received": sum(len(s.seqs) for s in run.subscribers),
        "snapshots_replayed": sum(s.replayed for s in run.subscribers),
        "seq_gaps": sum(s.gaps for s in run.subscribers),
        "subscribers": len(run.subscribers),
        "subscribers_terminal": sum(s.terminal is not None for s in run.subscribers),
        "subscribers_ready": sum(s.terminal == "READY" for s in run.subscribers),
        # Saw no progress at all: the first event they got was already the terminal one.
        "subscribers_terminal_only": sum(
            len(s.seqs) == 1 and s.terminal is not None for s in run.subscribers
        ),
        "server_peak_subscriptions": run.peak_server_subscriptions,
        "hub_reconnects": run.hub_reconnects,
        "rss_mb": {
            "api_peak": sampler.api_peak / mb,
            "workers_peak_sum": sampler.workers_sum_peak / mb,
            "workers_peak_max": sampler.worker_peak / mb,
            "worker_children_peak": sampler.worker_children_peak,
            "samples": sampler.samples,
        },
        "cpu": {
            "load_phase_s": run.finished - run.started,
            "api_s": sampler.api_cpu,
            "workers_s": sampler.workers_cpu,
            "machine_busy_percent": run.machine_cpu_percent,
        },
        "errors": sum(errors.values()),
        "error_counts": errors,
        "error_samples": (run.upload_errors + subscription_errors + not_ready + pages_wrong)[:50],
    }


def report(result: dict[str, Any]) -> None:
    config, rss, cpu = result["config"], result["rss_mb"], result["cpu"]

    def row(figures: dict[str, float], what: str) -> str:
        return (
            f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, max "
            f"{figures['max']:.1f} ms ({figures['count']} {what})"
        )

    rows = [
        ("setup", f"{config['documents']} PDFs ({config['pages'][0]}-{config['pages'][1]} pages), "
         f"{config['clients']} clients, {config['subscribers']} subscribers "
         f"({config['per_connection']}/connection), {config['workers']} workers, "
         f"{config['embedding']} embeddings, {config['cpus']} CPUs"),
        ("documents READY", f"{result['documents_ready']} ({result['pages_ready']} pages, "
         f"{result['bytes_uploaded'] / 1024 / 1024:.1f} MiB)"),
        ("first upload -> last READY", f"{result['elapsed_s']:.1f} s "
         f"(uploads took {result['upload_phase_s']:.1f} s)"),
        ("throughput", f"{result['documents_per_min']:.1f} documents/min, "
         f"{result['pages_per_s']:.1f} pages/s"),
        ("upload latency", row(result["upload_ms"], "uploads")),
        ("progress latency", row(result["progress_latency_ms"], "live events")),
        ("  after the first event", row(result["progress_latency_after_first_ms"], "events")),
        ("subscribe -> first event", row(result["subscribe_to_first_event_ms"], "subscribers")),
        ("API /healthz during load", row(result["healthz_ms"], "probes")),
        ("this script's loop lag", row(result["client_loop_lag_ms"], "samples")),
        ("events", f"{result['events_received']} received "
         f"({result['events_received'] / max(1, result['subscribers']):.1f} per subscriber), "
         f"{result['snapshots_replayed']} replayed snapshots, {result['seq_gaps']} seq gaps; "
         f"{result['subscribers_terminal_only']} subscribers saw only the terminal event"),
        ("subscribers terminal", f"{result['subscribers_terminal']} / {result['subscribers']} "
         f"({result['subscribers_ready']} saw READY); server peak "
         f"{result['server_peak_subscriptions']} open, {result['hub_reconnects']} hub reconnects"),
        ("peak RSS", f"API {rss['api_peak']:.0f} MiB | workers sum {rss['workers_peak_sum']:.0f} "
         f"MiB, max {rss['workers_peak_max']:.0f} MiB (with up to "
         f"{rss['worker_children_peak']} child process(es) each; {rss['samples']} samples)"),
        ("CPU seconds", f"API {cpu['api_s']:.1f} s, workers {cpu['workers_s']:.1f} s (whole "
         f"life, children included); machine {cpu['machine_busy_percent']:.0f}% busy over the "
         f"{cpu['load_phase_s']:.1f} s load phase"),
        ("errors", f"{result['errors']} "
         + ", ".join(f"{name} {n}" for name, n in result["error_counts"].items())),
    ]  # fmt: skip
    print()
    for name, value in rows:
        print(f"  {name:28} {value}")
    for sample in result["error_samples"][:20]:
        print(f"    ! {sample}")


def log_excerpts(log_dir: Path, lines: int = 15) -> None:
    """The last lines of each log that look like trouble."""
    words = ("error", "traceback", "exception", "warning", "critical")
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(errors="replace").splitlines()
        trouble = [line for line in text if any(word in line.lower() for word in words)]
        if trouble:
            print(f"\n--- {path.name}: {len(trouble)} line(s) of trouble, the last {lines}:")
            for line in trouble[-lines:]:
                print(f"    {line[:300]}")


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pages", type=int, nargs=2, default=[3, 8], metavar=("MIN", "MAX"))
    parser.add_argument(
        "--embedding",
        default="hashing",
        choices=["auto", "hashing", "sentence-transformers", "openai"],
        help="LEXINTEL_EMBEDDING_PROVIDER of the API and workers (default: hashing)",
    )
    parser.add_argument(
        "--per-connection",
        type=int,
        default=25,
        help="subscriptions per WebSocket (the server allows "
        "LEXINTEL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION, default 50)",
    )
    parser.add_argument("--database-url", help="use this database instead of an embedded one")
    parser.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for all documents")
    parser.add_argument(
        "--drain", type=float, default=30, help="seconds for subscriptions to complete after"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/load.json")
    parser.add_argument("--log-dir", type=Path, help="keep the API and worker logs here")
    args = parser.parse_args(argv)
    if args.documents < 1 or args.clients < 1 or args.workers < 1 or args.subscribers < 0:
        parser.error("--documents, --clients and --workers must be >= 1, --subscribers >= 0")
    if not 1 <= args.pages[0] <= args.pages[1]:
        parser.error("--pages MIN MAX needs 1 <= MIN <= MAX")
    if args.per_connection < 1:
        parser.error("--per-connection must be >= 1")
    return args


def child_env(settings: Settings, data_dir: Path, embedding: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LEXINTEL_DATABASE_URL": settings.database_url,
            "LEXINTEL_REDIS_URL": settings.redis_url,
            "LEXINTEL_DATA_DIR": str(data_dir),
            "LEXINTEL_EMBEDDING_PROVIDER": embedding,
        }
    )
    # One key drives the whole load: lift the per-tenant limits unless set.
    for name in (
        "LEXINTEL_API_MAX_SUBSCRIPTIONS_PER_ORGANIZATION",
        "LEXINTEL_API_MAX_SUBSCRIPTIONS_PER_KEY",
        "LEXINTEL_API_REQUESTS_PER_KEY_PER_SECOND",
        "LEXINTEL_API_MAX_CONCURRENT_UPLOADS_PER_ORG",
    ):
        env.setdefault(name, "1000000")
    return env


async def new_key(settings: Settings) -> str:
    async with engine_for(settings) as engine, create_session_factory(engine).begin() as session:
        _, secret = await create_api_key(session, "Load Test LLP", name="bench/load.py")
    return secret


@contextlib.contextmanager
def embedded_servers(tmp: Path) -> Iterator[Settings]:
    """Throwaway PostgreSQL (pgvector) and Redis under `tmp`, migrated: their settings."""
    postgres = EmbeddedPostgres(tmp / "pg", port=free_port(), durable=False)
    redis = EmbeddedRedis(tmp / "redis", port=free_port(), persist=False)
    log("starting PostgreSQL (pgvector) and Redis")
    try:
        postgres.start()
        postgres.create_database("lexintel")
        redis.start()
        settings = Settings(
            _env_file=None, database_url=postgres.url("lexintel"), redis_url=redis.url()
        )
        migrate.upgrade(settings)
        yield settings
    finally:
        redis.stop()
        postgres.stop(mode="immediate")


def run_benchmark(args: argparse.Namespace, tmp: Path, on_exit: Callable[..., Any]) -> int:
    log_dir = args.log_dir or tmp / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    database_url, redis_url = args.database_url, args.redis_url
    if database_url is None:
        postgres = EmbeddedPostgres(tmp / "pg", port=free_port(), durable=False)
        log("starting PostgreSQL (pgvector)")
        postgres.start()
        on_exit(postgres.stop, mode="immediate")
        postgres.create_database("lexintel")
        database_url = postgres.url("lexintel")
    if redis_url is None:
        redis = EmbeddedRedis(tmp / "redis", port=free_port(), persist=False)
        log("starting Redis")
        redis.start()
        on_exit(redis.stop)
        redis_url = redis.url()
    settings = Settings(_env_file=None, database_url=database_url, redis_url=redis_url)
    log("migrating")
    migrate.upgrade(settings)
    key = asyncio.run(new_key(settings))
    log(f"generating {args.documents} PDFs")
    documents = make_documents(args.documents, args.pages[0], args.pages[1], args.seed)
    log(f"{sum(d.pages for d in documents)} pages, {sum(len(d.content) for d in documents):,} B")

    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    processes = Processes(log_dir, child_env(settings, tmp / "data", args.embedding), tmp)
    on_exit(processes.stop)
    log(f"starting the API on port {port} and {args.workers} worker(s)")
    processes.start_api(port)
    processes.start_workers(args.workers)
    wait_ready(api_url, processes)
    assert processes.api is not None
    sampler = RssSampler(processes.api.pid, [worker.pid for worker in processes.workers])
    sampler.start()
    on_exit(sampler.stop)
    log("API ready")

    run, rows = asyncio.run(load(args, api_url, settings, key, documents, processes))
    sampler.stop()
    result = figures(args, run, rows, sampler)
    report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    if result["errors"]:
        log_excerpts(log_dir)
        if args.log_dir is None:
            kept = args.output.with_name(f"{args.output.stem}-logs")
            processes.stop()  # closes the log files
            shutil.copytree(log_dir, kept, dirs_exist_ok=True)
            print(f"logs copied to {kept}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM stops the run like a Ctrl-C: every process and server is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with (
        tempfile.TemporaryDirectory(prefix="lexintel-load-", ignore_cleanup_errors=True) as tmp,
        contextlib.ExitStack() as stack,
    ):
        return run_benchmark(args, Path(tmp), stack.callback)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # processes and servers are stopped by now
        print("interrupted", file=sys.stderr)
        sys.exit(130)
