"""Progress latency and memory per subscriber: one API process, 1 to 10,000 live subscribers.

    python bench/progress_latency.py [--levels 1 100 1000 10000] [--seconds 20] [--rate 200]
                                     [--only NAME ...] [--output PATH]

Starts a throwaway embedded PostgreSQL 18 + pgvector and Redis, migrates, creates an API key,
a case and 10,000 QUEUED documents (rows only: no worker runs). Each scenario starts a fresh
API process (`python -m uvicorn lexintel_api.app:app`, or the baseline app), warms it up, reads
its RSS, then starts client processes (this script with `--client`) in which every subscriber
watches its own document:

- `ws`: a `documentProgress` subscription over graphql-transport-ws, one WebSocket connection
  per subscriber (the client offers permessage-deflate, as browsers do);
- `sse`: the plain Server-Sent Events stream `/api/documents/{id}/progress`, one HTTP
  connection per subscriber;
- `poll`: the old design: `query { document(id) { status } }` every 2 s per subscriber.

Once every subscriber has its first event, the script reads the API's RSS again (growth per
subscriber) and Redis's CLIENT LIST (connections in Pub/Sub mode), then publishes progress
events the way a worker does (`publish_progress`: seq, snapshot, PUBLISH) for --seconds at
--rate events/s, round-robin over the documents, at most one event per document every 50 ms
(every 4 s for `poll`, so that a poller sees each change; the publisher then also writes the
status to PostgreSQL first, as the worker does). Latency is receipt time minus the wall-clock
time just before the publish (for `poll`: the end of the first poll sent after the commit).
Every published event must arrive (`lost` counts those that did not; for `poll`, the changes
no poll saw before the run ended). The client processes run with the cyclic GC off, so that
their own pauses do not count as the server's.

Scenarios beyond the three transports: without gc.freeze() (LEXINTEL_API_GC_FREEZE), and with
Python's own GC thresholds as well (LEXINTEL_API_GC_THRESHOLD); uvicorn's permessage-deflate on
(its default; LexIntel turns it off) and its older `websockets` WebSocket implementation (its
default is websockets-sansio); 25 subscriptions per WebSocket; and the baseline hub
(bench/per_subscriber_hub.py: one Redis Pub/Sub connection per subscriber). The API runs behind
bench/gc_probe.py, which records its cyclic-GC collections during the publishing.
Writes bench/results/progress_latency.json; `bench/plot.py` draws the curves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
from load import (
    BIN,
    Processes,
    child_env,
    embedded_servers,
    log,
    new_key,
    percentile,
    wait_ready,
)
from redis.asyncio import Redis
from sqlalchemy import insert, select, update
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from lexintel_api.websocket import WS_PROTOCOL
from lexintel_core.db import engine_for
from lexintel_core.embedded_servers import free_port
from lexintel_core.models import ApiKey, Case, Document
from lexintel_core.progress import ProgressEvent, Stage, publish_progress
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = "subscription($id: UUID!) { documentProgress(documentId: $id) { seq status } }"
POLL = "query($id: UUID!) { document(id: $id) { status } }"
POLL_SECONDS = 2.0
CONNECT_AT_ONCE = 25  # connections a client opens concurrently
STATUSES = [ProcessingStatus.EXTRACTING, ProcessingStatus.CHUNKING, ProcessingStatus.EMBEDDING]


@dataclass
class Scenario:
    name: str
    mode: str  # ws | sse | poll
    subscribers: int
    app: str = "lexintel_api.app:app"
    uvicorn: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # LEXINTEL_* settings of the API
    per_connection: int = 1  # ws: subscriptions multiplexed on one WebSocket


def scenarios(levels: Sequence[int]) -> list[Scenario]:
    top = max(levels)
    mid = 1000 if 1000 in levels else top
    plan = [Scenario(f"ws-{n}", "ws", n) for n in levels]
    plan += [Scenario(f"sse-{n}", "sse", n) for n in levels]
    # 10,000 pollers every 2 s would ask one API process for 5,000 queries/s.
    plan += [Scenario(f"poll-{n}", "poll", n) for n in levels if n <= 1000]
    ends = sorted({mid, top})
    no_freeze = {"LEXINTEL_API_GC_FREEZE": "false"}
    python_gc = {**no_freeze, "LEXINTEL_API_GC_THRESHOLD": "[700, 10, 10]"}
    plan += [Scenario(f"ws-{n}-no-gc-freeze", "ws", n, env=no_freeze) for n in ends]
    plan += [Scenario(f"ws-{n}-python-gc", "ws", n, env=python_gc) for n in ends]
    plan += [Scenario(f"ws-{n}-25-per-connection", "ws", n, per_connection=25) for n in ends]
    plan += [
        Scenario(f"ws-{mid}-deflate", "ws", mid, uvicorn=["--ws-per-message-deflate", "true"]),
        # uvicorn's own implementations (the later --ws wins): its default, websockets-sansio,
        # which lexintel_api.websocket trims, and the older one on the same library.
        Scenario(f"ws-{mid}-uvicorn-sansio", "ws", mid, uvicorn=["--ws", "websockets-sansio"]),
        Scenario(f"ws-{mid}-legacy-websockets", "ws", mid, uvicorn=["--ws", "websockets"]),
        # Redis's default maxclients (10,000) caps this design below the top level.
        Scenario(f"ws-{mid}-per-subscriber-hub", "ws", mid, app="per_subscriber_hub:app"),
    ]
    return plan


# -- clients (separate processes) -----------------------------------------------------------


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.api = spec["api"]
        self.key = spec["key"]
        self.received: list[tuple[int, int, float]] = []  # (document index, seq, time)
        self.polls: list[tuple[int, float, float, str]] = []  # (index, sent, answered, status)
        self.first: set[int] = set()  # subscribers that got their first event
        self.ended: set[int] = set()  # subscribers whose stream ended or failed
        self.warm = asyncio.Event()
        self.stop = asyncio.Event()
        self.errors: list[str] = []

    def got(self, index: int, seq: int, at: float) -> None:
        self.received.append((index, seq, at))
        self.first.add(index)
        self.check_warm()

    def check_warm(self) -> None:
        if len(self.first | self.ended) == len(self.spec["documents"]):
            self.warm.set()

    def track(self, indexes: list[int], task: asyncio.Task[None]) -> None:
        def ended(_: asyncio.Task[None]) -> None:
            self.ended.update(indexes)
            self.check_warm()

        task.add_done_callback(ended)

    async def ws(self, batch: list[tuple[int, str]], gate: asyncio.Semaphore) -> None:
        """One WebSocket carrying a subscription per document of `batch`."""
        url = self.api.replace("http://", "ws://") + "/graphql"
        async with gate:
            socket = await connect(
                url,
                subprotocols=[Subprotocol("graphql-transport-ws")],
                open_timeout=120,
                ping_interval=None,
                max_size=None,
            )
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {self.key}"}}
            await socket.send(json.dumps(init))
            ack = json.loads(await socket.recv())
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"expected connection_ack, got {ack}")
            for index, document_id in batch:
                payload = {"query": PROGRESS, "variables": {"id": document_id}}
                subscribe = {"id": str(index), "type": "subscribe", "payload": payload}
                await socket.send(json.dumps(subscribe))
            # Hold the slot until the server has set every subscription up (its first message):
            # a client opening thousands at once would measure the server's backlog instead.
            waiting = {index for index, _ in batch}
            while waiting:
                waiting.discard(await self.receive(socket, await socket.recv()))
        async with socket:
            async for raw in socket:
                await self.receive(socket, raw)

    async def receive(self, socket: ClientConnection, raw: str | bytes) -> int | None:
        """Record one graphql-transport-ws message; returns its subscription's index."""
        at = time.time()
        message = json.loads(raw)
        if message["type"] == "ping":
            await socket.send('{"type":"pong"}')
            return None
        index = int(message["id"])
        data = (message.get("payload") or {}).get("data") if message["type"] == "next" else None
        if data:
            self.got(index, data["documentProgress"]["seq"], at)
        else:  # an error result, an error message, or a completion before the end
            self.errors.append(f"{index}: {message}")
            self.ended.add(index)
            self.check_warm()
        return index

    async def sse(
        self, index: int, document_id: str, gate: asyncio.Semaphore, client: httpx.AsyncClient
    ) -> None:
        url = f"/api/documents/{document_id}/progress"
        request = client.build_request("GET", url, headers={"Accept": "text/event-stream"})
        async with gate:
            response = await client.send(request, stream=True)
        try:
            if response.status_code != 200:
                self.errors.append(f"{document_id}: HTTP {response.status_code}")
                return
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    self.got(index, int(line[4:]), time.time())
        finally:
            await response.aclose()

    async def poll(self, index: int, document_id: str, client: httpx.AsyncClient) -> None:
        await asyncio.sleep(random.uniform(0, POLL_SECONDS))  # noqa: S311 - spread the pollers
        body = {"query": POLL, "variables": {"id": document_id}}
        while not self.stop.is_set():
            sent = time.time()
            response = await client.post("/graphql", json=body)
            answered = time.time()
            data = response.json().get("data") or {}
            if response.status_code != 200 or not data.get("document"):
                self.errors.append(f"{document_id}: {response.status_code} {response.text[:200]}")
                return
            self.polls.append((index, sent, answered, data["document"]["status"]))
            self.first.add(index)
            self.check_warm()
            await asyncio.sleep(max(0.0, sent + POLL_SECONDS - time.time()))

    async def run(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(self.spec.get("connect_at_once", CONNECT_AT_ONCE))
        mode = self.spec["mode"]
        documents = self.spec["documents"]
        headers = {"Authorization": f"Bearer {self.key}", "GraphQL-Require-Preflight": "1"}
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(
            base_url=self.api, headers=headers, timeout=120, limits=limits
        ) as client:
            if mode == "ws":
                per = self.spec.get("per_connection", 1)
                batches = [documents[k : k + per] for k in range(0, len(documents), per)]
                jobs = [([i for i, _ in b], self.ws(b, gate)) for b in batches]
            elif mode == "sse":
                jobs = [([i], self.sse(i, d, gate, client)) for i, d in documents]
            else:
                jobs = [([i], self.poll(i, d, client)) for i, d in documents]
            running = []
            for indexes, job in jobs:
                running.append(asyncio.create_task(job))
                self.track(indexes, running[-1])
            print("subscribed", flush=True)
            stdin = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
            warm = asyncio.create_task(self.warm.wait())
            await asyncio.wait([warm, stdin], return_when=asyncio.FIRST_COMPLETED)
            if warm.done():
                print("warm", flush=True)
            await stdin  # "stop"
            self.stop.set()
            for task in running:
                task.cancel()
            results = await asyncio.gather(*running, return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        self.errors += [f"{type(e).__name__}: {e}" for e in failures[:20]]
        return {"received": self.received, "polls": self.polls, "errors": self.errors}


def client_main(spec_path: str) -> int:
    # What is measured is the server: a collection pausing this client would add to it.
    gc.disable()
    spec = json.loads(Path(spec_path).read_text())
    Path(spec["out"]).write_text(json.dumps(asyncio.run(Client(spec).run())))
    return 0


# -- the orchestrator -----------------------------------------------------------------------


class ClientProcess:
    def __init__(self, spec: dict[str, Any], tmp: Path, number: int) -> None:
        spec_path = tmp / f"client-{number}.json"
        spec["out"] = str(tmp / f"client-{number}-out.json")
        spec_path.write_text(json.dumps(spec))
        self.spec = spec
        self.process = subprocess.Popen(  # noqa: S603 - this script
            [sys.executable, __file__, "--client", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def expect(self, line: str) -> None:
        assert self.process.stdout is not None
        got = self.process.stdout.readline().strip()
        if got != line:
            raise RuntimeError(f"client said {got!r}, expected {line!r}")

    def finish(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
        self.process.wait(120)
        result: dict[str, Any] = json.loads(Path(self.spec["out"]).read_text())
        return result


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms, default=0.0), 2),
    }


def pubsub_connections(clients: list[dict[str, Any]]) -> int:
    return sum(1 for c in clients if int(c.get("sub", 0)) or int(c.get("psub", 0)))


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
        self.args, self.settings, self.tmp = args, settings, tmp
        self.key = ""
        self.case_id = uuid.uuid4()
        self.documents: list[uuid.UUID] = []
        self.steps: dict[uuid.UUID, int] = {}

    async def prepare(self, count: int) -> None:
        self.key = await new_key(self.settings)
        async with engine_for(self.settings) as engine, engine.begin() as connection:
            organization = await connection.scalar(select(ApiKey.organization_id).limit(1))
            await connection.execute(
                insert(Case).values(id=self.case_id, name="Bench", organization_id=organization)
            )
            self.documents = [uuid.uuid4() for _ in range(count)]
            rows = [
                {
                    "id": i,
                    "case_id": self.case_id,
                    "filename": f"document-{n:05d}.pdf",
                    "size_bytes": 1000,
                    "sha256": f"{n:064x}",
                    "blob_key": f"{n:064x}",
                    "status": ProcessingStatus.QUEUED,
                }
                for n, i in enumerate(self.documents)
            ]
            await connection.execute(insert(Document), rows)

    def next_event(self, document_id: uuid.UUID) -> ProgressEvent:
        """The document's next progress event: each one a different status than the last."""
        step = self.steps.get(document_id, 0) + 1
        self.steps[document_id] = step
        return ProgressEvent(
            document_id=document_id,
            case_id=self.case_id,
            stage=Stage.EXTRACT,
            status=STATUSES[step % len(STATUSES)],
            percent=step % 100,
        )

    async def publish(self, redis: Redis, event: ProgressEvent) -> tuple[int, float]:
        """Publish as a worker does; returns the event's seq and the moment before."""
        at = time.time()
        published = await publish_progress(redis, event)
        assert published is not None
        return published.seq, at

    def start_api(self, scenario: Scenario) -> tuple[Processes, str]:
        env = child_env(self.settings, self.tmp / "data", "hashing")
        env.update(scenario.env)
        env["LEXINTEL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION"] = "50"
        processes = Processes(self.tmp, env, ROOT)
        port = free_port()
        env["BENCH_APP"] = scenario.app  # served by bench/gc_probe.py, which times collections
        command = [sys.executable, "-m", "uvicorn", "gc_probe:app"]
        command += ["--app-dir", str(ROOT / "bench")]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        command += ["--ws", WS_PROTOCOL, "--ws-per-message-deflate", "false", *scenario.uvicorn]
        processes.api = processes._spawn(f"api-{scenario.name}", command)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, processes)
        return processes, url

    async def run(self, scenario: Scenario, redis: Redis) -> dict[str, Any]:
        log(f"{scenario.name}: starting the API")
        processes, url = await asyncio.to_thread(self.start_api, scenario)
        assert processes.api is not None
        api = psutil.Process(processes.api.pid)
        try:
            return await self._measure(scenario, redis, url, api)
        finally:
            await asyncio.to_thread(processes.stop)

    async def _measure(
        self, scenario: Scenario, redis: Redis, url: str, api: psutil.Process
    ) -> dict[str, Any]:
        n = scenario.subscribers
        documents = self.documents[:n]
        headers = {"Authorization": f"Bearer {self.key}", "GraphQL-Require-Preflight": "1"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            # Warm the request path up, and open the database pool's connections, before the
            # baseline RSS: they are a fixed cost, not one of the subscribers'.
            body = {"query": POLL, "variables": {"id": str(documents[0])}}
            for _ in range(5):
                answers = await asyncio.gather(
                    *(http.post("/graphql", json=body) for _ in range(20))
                )
                for answer in answers:
                    answer.raise_for_status()
        await asyncio.sleep(1)
        rss_before = api.memory_info().rss
        per_client = self.args.clients
        specs = [
            {
                "api": url,
                "key": self.key,
                "mode": scenario.mode,
                "per_connection": scenario.per_connection,
                "documents": [
                    (i, str(d)) for i, d in enumerate(documents) if i // per_client == number
                ],
            }
            for number in range(-(-n // per_client))
        ]
        clients = [ClientProcess(spec, self.tmp, k) for k, spec in enumerate(specs)]
        started = time.monotonic()
        for client in clients:
            await asyncio.to_thread(client.expect, "subscribed")
        for document_id in documents:  # every subscriber's first event
            await self.publish(redis, self.next_event(document_id))
        for client in clients:
            await asyncio.to_thread(client.expect, "warm")
        setup_s = time.monotonic() - started
        log(f"{scenario.name}: {n} subscriber(s) live after {setup_s:.1f}s")
        await asyncio.sleep(2)
        rss_after = api.memory_info().rss
        listed = await redis.client_list()
        async with httpx.AsyncClient(base_url=url) as http:
            (await http.get("/bench/gc-pauses?reset=1")).raise_for_status()
            published = await self.publish_for(scenario, redis, documents)
            pauses = (await http.get("/bench/gc-pauses")).json()
        await asyncio.sleep(POLL_SECONDS + 1 if scenario.mode == "poll" else 1)
        results = [await asyncio.to_thread(client.finish) for client in clients]
        errors = [e for r in results for e in r["errors"]]
        if scenario.mode == "poll":
            latencies, lost = poll_latencies(published, results)
            slowest = []
        else:
            received = {(i, seq): at for r in results for i, seq, at in r["received"]}
            first = min(published.values(), default=0.0)
            # (latency, seconds into the publishing) of every event that arrived
            arrived = [
                (received[k] - at, at - first) for k, at in published.items() if k in received
            ]
            latencies = [latency for latency, _ in arrived]
            lost = len(published) - len(arrived)
            slowest = [
                (round(lat * 1000, 1), round(t, 2)) for lat, t in sorted(arrived)[-10:][::-1]
            ]
        result = {
            **asdict(scenario),
            "setup_s": round(setup_s, 1),
            "events": len(published),
            "lost": lost,
            "errors": errors[:10],
            "latency": summary_ms(latencies),
            # (ms, seconds into the publishing): when the tail happened.
            "slowest": slowest,
            "api_rss_before_mib": round(rss_before / 2**20, 1),
            "api_rss_after_mib": round(rss_after / 2**20, 1),
            "rss_per_subscriber_kib": round((rss_after - rss_before) / n / 1024, 1),
            "redis_connections": len(listed),
            "redis_pubsub_connections": pubsub_connections(listed),
            # The API's cyclic-GC collections while events were published: count, longest.
            "gc": {
                f"gen{g}": {
                    "count": sum(1 for gen, _ in pauses if gen == g),
                    "max_ms": max((ms for gen, ms in pauses if gen == g), default=0.0),
                }
                for g in range(3)
            },
        }
        log(
            f"{scenario.name}: {result['latency']}, lost {lost}, "
            f"{result['rss_per_subscriber_kib']} KiB/subscriber, "
            f"{result['redis_pubsub_connections']} Pub/Sub connection(s)"
        )
        return result

    async def publish_for(
        self, scenario: Scenario, redis: Redis, documents: list[uuid.UUID]
    ) -> dict[tuple[int, int], float]:
        """Publish for --seconds; returns (document index, seq) -> publish time."""
        gap = 4.0 if scenario.mode == "poll" else 0.05  # per document
        rate = min(self.args.rate, len(documents) / gap)
        seconds = max(self.args.seconds, 10 * gap) if scenario.mode == "poll" else self.args.seconds
        count = max(1, int(rate * seconds))
        published: dict[tuple[int, int], float] = {}
        async with engine_for(self.settings) as engine:
            start = time.monotonic()
            for k in range(count):
                due = start + k / rate
                if scenario.mode == "poll":  # not in step with the pollers
                    due += random.uniform(0, POLL_SECONDS)  # noqa: S311
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                index = k % len(documents)
                event = self.next_event(documents[index])
                if scenario.mode == "poll":  # the worker commits the status, then publishes
                    async with engine.begin() as connection:
                        await connection.execute(
                            update(Document)
                            .where(Document.id == event.document_id)
                            .values(status=event.status)
                        )
                seq, at = await self.publish(redis, event)
                published[(index, seq)] = at
        return published


def poll_latencies(
    published: dict[tuple[int, int], float], results: list[dict[str, Any]]
) -> tuple[list[float], int]:
    """For each status change, the time until the end of the first poll sent after it; a change
    no later poll saw with its status counts as lost."""
    polls: dict[int, list[tuple[float, float, str]]] = {}
    for result in results:
        for index, sent, answered, status in result["polls"]:
            polls.setdefault(index, []).append((sent, answered, status))
    for answers in polls.values():
        answers.sort()
    latencies, lost = [], 0
    for (index, _), at in published.items():
        later = [p for p in polls.get(index, []) if p[0] >= at]
        if not later:
            lost += 1
            continue
        latencies.append(later[0][1] - at)
    return latencies, lost


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'scenario':34} {'events':>6} {'lost':>4} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'KiB/sub':>8} {'pubsub':>6}")  # fmt: skip
    for r in results:
        lat = r["latency"]
        print(
            f"{r['name']:34} {r['events']:>6} {r['lost']:>4} {lat['p50_ms']:>8} "
            f"{lat['p95_ms']:>8} {lat['p99_ms']:>8} {lat['max_ms']:>8} "
            f"{r['rss_per_subscriber_kib']:>8} {r['redis_pubsub_connections']:>6}"
        )


async def run_all(args: argparse.Namespace, settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    bench = Bench(args, settings, tmp)
    await bench.prepare(max(args.levels))
    plan = [s for s in scenarios(args.levels) if not args.only or s.name in args.only]
    results = []
    async with Redis.from_url(settings.redis_url) as redis:
        for scenario in plan:
            results.append(await bench.run(scenario, redis))
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 100, 1000, 10000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s, all documents")
    parser.add_argument("--clients", type=int, default=2500, help="subscribers per client process")
    parser.add_argument("--only", nargs="*", help="scenario names (see the docstring)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "progress_latency.json"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(args.client)
    # The API and the client processes inherit the raised limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(args.levels) + 1000:  # the API holds one per subscriber
        raise SystemExit(f"the open-file limit ({hard}) is too low for {max(args.levels)}")
    with (
        tempfile.TemporaryDirectory(prefix="lexintel-progress-", ignore_cleanup_errors=True) as t,
        embedded_servers(Path(t)) as settings,
    ):
        results = asyncio.run(run_all(args, settings, Path(t)))
    report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    environment = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "bin": str(BIN)}
    args.output.write_text(json.dumps({"environment": environment, "scenarios": results}, indent=2))
    print(f"\nwrote {args.output}")
    # A poller that never saw a change is the baseline's failure, not an error of the run.
    failed = [r for r in results if r["errors"] or (r["lost"] and r["mode"] != "poll")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
