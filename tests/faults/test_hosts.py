"""Faults that cross hosts (issue 17): LexIntel on simulated machines, each a Linux network
namespace on one bridge (tests/faults/netns.py, tests/faults/hosts.py): a data host with
PostgreSQL and Redis, an API host (uvicorn), worker hosts (`lexintel worker`), and the client
host the test speaks from.

- A worker host that dies without a word (its processes frozen, its switch port dropping
  everything: the database keeps its sessions, as it does for a machine that lost power)
  must not strand its document: READY within the takeover time and one job retry, with one
  set of chunks.
- A worker cut off by a partition that comes back after its document was taken over must
  write nothing.
- Redis silent for 20 s to the API host (its packets dropped on the switch): `/readyz`
  answers 503 within 2 s during the cut, and subscribers get events again within 5 s of the
  restore.

Needs root and iproute2 (`ip`, `tc`); skips with the reason otherwise, fails in CI. The
measured times are printed as `[cross-host] ...` lines, captured output or not.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults.hosts import (
    REDIS_PORT,
    Cluster,
    Watcher,
    WorkerHost,
    process_job_id,
    start_cluster,
)
from tests.faults.netns import NetnsError, Network
from tests.jobs.conftest import make_pdf
from tests.tools import unavailable

TAKEOVER_SECONDS = 3.0
RETRY_DELAYS = [1.0, 1.0, 2.0, 2.0]
WORKER_SETTINGS: dict[str, Any] = {
    "EMBEDDING_PROVIDER": "hashing",
    "PDF_ENGINE": "pypdf",  # the slower engine keeps a document in flight long enough
    "OCR": "off",
    "WORKER_CONCURRENCY": 2,
    "WORKER_HEARTBEAT_SECONDS": 0.5,
    "WORKER_TAKEOVER_SECONDS": TAKEOVER_SECONDS,
    "WORKER_SHUTDOWN_GRACE_SECONDS": 0,
    "RETRY_DELAYS_SECONDS": json.dumps(RETRY_DELAYS),
    "RETRY_JITTER": 0,
}
PAGES = 600
LINE = "The Licensee shall indemnify the Licensor against all claims arising from use."
STARTUP_SECONDS = 90  # a worker or API process starting on a busy two-core machine


def _document(number: int) -> bytes:
    """Same shape (so the same chunks) for every number, different bytes."""
    return make_pdf(
        [f"Agreement {number:03d}, page {page}\n" + "\n".join([LINE] * 40) for page in range(PAGES)]
    )


def _require_namespaces() -> None:
    if os.geteuid() != 0:
        unavailable("needs root: it creates network namespaces, veth pairs and a bridge")
    missing = [program for program in ("ip", "tc") if shutil.which(program) is None]
    if missing:
        unavailable(
            f"needs iproute2 ({' and '.join(missing)} not found on PATH): "
            "sudo apt-get install iproute2 (.ci/run installs it)"
        )
    try:
        Network().close()
    except (NetnsError, OSError) as exc:
        unavailable(f"cannot create network namespaces here: {exc}")


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print a measurement even while pytest captures output (CI logs show it)."""
    with capsys.disabled():
        print(f"\n[cross-host] {line}", flush=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_namespaces()
    root = tmp_path_factory.mktemp("hosts")
    os.chmod(root, 0o755)  # PostgreSQL runs as its own user below it
    made = start_cluster(root, WORKER_SETTINGS)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def hosts(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, with this test's worker hosts removed afterwards."""
    try:
        yield cluster
    finally:
        cluster.remove_workers()


@dataclass
class CleanRun:
    chunks: int
    seconds: float
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def clean_run(cluster: Cluster) -> CleanRun:
    """One document of the tests' shape, uploaded through the API host and processed by two
    worker hosts with nothing going wrong."""
    try:
        workers = [cluster.start_worker(), cluster.start_worker()]
        for worker in workers:
            worker.wait_started(STARTUP_SECONDS)
        run = cluster.run(_clean_run(cluster))
    finally:
        cluster.remove_workers()
    return run


async def _clean_run(cluster: Cluster) -> CleanRun:
    case_id = await cluster.create_case("Clean run")
    content = _document(0)
    started = time.monotonic()
    document_id = await cluster.upload(case_id, content, "clean.pdf")
    watcher = cluster.watch(document_id)
    try:
        state = await cluster.wait_status(document_id, {"READY", "FAILED"}, within=180)
        seconds = time.monotonic() - started
        assert state is not None, f"not READY after 180s: {await cluster.document(document_id)}"
        assert state.status == "READY", state
        await watcher.until(lambda event: event["status"] == "READY", within=10)
    finally:
        await watcher.close()
    assert state.page_count == PAGES
    assert state.ordinals == list(range(len(state.ordinals))), state.ordinals
    return CleanRun(len(state.ordinals), seconds, [event for _, event in watcher.events])


def test_a_clean_run_across_hosts(
    hosts: Cluster, clean_run: CleanRun, capsys: pytest.CaptureFixture[str]
) -> None:
    assert clean_run.chunks > PAGES  # several chunks a page: a real document
    statuses = [event["status"] for event in clean_run.events]
    assert statuses[-1] == "READY"
    assert "EXTRACTING" in statuses
    report(
        capsys,
        f"clean run: {PAGES}-page upload → READY in {clean_run.seconds:.1f} s, "
        f"{clean_run.chunks} chunks, {len(statuses)} progress events",
    )


# -- (a) a worker host dies: no FIN, no RST, its database sessions live on -----------------


def _takeover_bound(clean: CleanRun) -> float:
    """Takeover time + one job retry (a deferral by the takeover time, or a retry delay),
    then a run of the whole document, with room for a busy machine."""
    return 2 * TAKEOVER_SECONDS + max(RETRY_DELAYS[0], TAKEOVER_SECONDS) + 2 * clean.seconds + 10


async def _in_flight(cluster: Cluster, number: int) -> tuple[str, str, Watcher]:
    """Upload document `number` and return (its id, its job id, a subscriber) once a worker
    is extracting it, well before the end."""
    case_id = await cluster.create_case(f"Host faults {number}")
    document_id = await cluster.upload(case_id, _document(number), f"agreement-{number}.pdf")
    watcher = cluster.watch(document_id)
    await watcher.until(lambda e: e["status"] == "EXTRACTING" and e["percent"] > 0, within=60)
    return document_id, process_job_id(document_id), watcher


async def _owner(workers: list[WorkerHost], job: str) -> WorkerHost:
    """The worker running `job` (the one whose log shows its start)."""
    deadline = time.monotonic() + 10
    while True:
        running = [worker for worker in workers if worker.has_run(job)]
        if running:
            assert len(running) == 1, [w.name for w in running]
            return running[0]
        assert time.monotonic() < deadline, "no worker logged the start of the job"
        await asyncio.sleep(0.1)


def _why_not_taken_over(survivor: WorkerHost) -> str:
    """What the other worker's log says about why it did not take the document over."""
    deferrals = survivor.output().count("another run of this document is still going on")
    if deferrals:
        return (
            f'the other worker deferred it {deferrals} times ("another run of this '
            "document is still going on\"): the first worker's database session, which "
            "PostgreSQL keeps until TCP keepalive gives up (~2 h), still holds the document"
        )
    return f"the other worker's log:\n{survivor.output()[-3000:]}"


async def _one_set_of_chunks(cluster: Cluster, document_id: str, clean: CleanRun) -> None:
    state = await cluster.document(document_id)
    assert state.status == "READY", state.status
    assert state.page_count == PAGES
    assert state.ordinals == list(range(clean.chunks)), (
        f"{len(state.ordinals)} chunks ({len(set(state.ordinals))} distinct ordinals); "
        f"a clean run makes {clean.chunks}"
    )


def test_a_worker_host_that_dies_silently_has_its_document_taken_over(
    hosts: Cluster, clean_run: CleanRun, capsys: pytest.CaptureFixture[str]
) -> None:
    workers = [hosts.start_worker(), hosts.start_worker()]
    for worker in workers:
        worker.wait_started(STARTUP_SECONDS)

    bound = _takeover_bound(clean_run)

    async def scenario() -> float:
        document_id, job, watcher = await _in_flight(hosts, 1)
        try:
            dead = await _owner(workers, job)
            (survivor,) = [worker for worker in workers if worker is not dead]
            died = time.monotonic()
            dead.host.freeze()  # power gone: no process runs, nothing is closed...
            hosts.network.detach(dead.host)  # ...and nothing answers on the wire
            state = await hosts.wait_status(document_id, {"READY", "FAILED"}, within=bound)
            elapsed = time.monotonic() - died
            if state is None:
                state = await hosts.document(document_id)
                report(capsys, f"worker host death → READY: not within {bound:.0f} s")
                raise AssertionError(
                    f"document still {state.status} {elapsed:.0f}s after its worker host died "
                    f"(bound: takeover + one retry + a run = {bound:.0f}s); "
                    + _why_not_taken_over(survivor)
                )
            await _one_set_of_chunks(hosts, document_id, clean_run)
            await watcher.until(lambda e: e["status"] == "READY", within=10)
            return elapsed
        finally:
            await watcher.close()

    elapsed = hosts.run(scenario())
    report(
        capsys,
        f"worker host death → its document READY: {elapsed:.1f} s (bound {bound:.0f} s: "
        f"takeover {TAKEOVER_SECONDS:.0f} s, clean run {clean_run.seconds:.1f} s)",
    )


# -- (b) a partitioned worker comes back after its document was taken over ------------------


def test_a_partitioned_worker_that_returns_writes_nothing(
    hosts: Cluster, clean_run: CleanRun, capsys: pytest.CaptureFixture[str]
) -> None:
    workers = [hosts.start_worker(), hosts.start_worker()]
    for worker in workers:
        worker.wait_started(STARTUP_SECONDS)

    async def scenario() -> tuple[float, float, str]:
        document_id, job, watcher = await _in_flight(hosts, 2)
        try:
            cut_off = await _owner(workers, job)
            (survivor,) = [worker for worker in workers if worker is not cut_off]
            parted = time.monotonic()
            hosts.network.detach(cut_off.host)  # it runs on, but reaches nobody
            bound = _takeover_bound(clean_run)
            state = await hosts.wait_status(document_id, {"READY", "FAILED"}, within=bound)
            taken_over = time.monotonic() - parted
            if state is None:
                state = await hosts.document(document_id)
                report(capsys, f"partition → READY by the other worker: not within {bound:.0f} s")
                raise AssertionError(
                    f"document still {state.status} {taken_over:.0f}s into the partition of "
                    f"its worker (bound {bound:.0f}s); " + _why_not_taken_over(survivor)
                )
            await _one_set_of_chunks(hosts, document_id, clean_run)
            await watcher.until(lambda e: e["status"] == "READY", within=10)
            before = await hosts.document(document_id)
            # It may give up on its own while cut off (a lease it cannot renew): fine too.
            ended_while_cut_off = cut_off.has_ended(job)

            hosts.network.attach(cut_off.host)  # the partition heals
            healed = time.monotonic()
            ended = await cut_off.wait_ended(job, within=120)
            returned = 0.0 if ended_while_cut_off else time.monotonic() - healed
            await asyncio.sleep(2)  # anything it still sends lands
            after = await hosts.document(document_id)
            snapshot = await hosts.snapshot(document_id)
        finally:
            await watcher.close()
        assert after.row == before.row, f"the returning worker changed the document:\n{ended}"
        assert after.chunks == before.chunks, (
            f"the returning worker changed the chunks ({len(before.chunks)} before, "
            f"{len(after.chunks)} after):\n{ended}"
        )
        assert snapshot is not None
        assert snapshot["status"] == "READY", snapshot
        return taken_over, returned, ended

    taken_over, returned, ended = hosts.run(scenario())
    report(
        capsys,
        f"partition → document READY by the other worker: {taken_over:.1f} s; the returning "
        f"worker's run ended {returned:.1f} s after the heal (0: while cut off), writing "
        f"nothing: {ended.strip()}",
    )


# -- (c) Redis silent to the API host for 20 s ---------------------------------------------

REDIS_CUT_SECONDS = 20.0
RESUME_WITHIN = 5.0
READYZ_WITHIN = 2.0
READYZ_PROBES = (2.0, 12.0)  # seconds into the cut
READYZ_LIMIT = 6.0  # a probe without an answer by then counts as none (and ends in the cut)
# Work for progress events to flow through the cut and well after it: one worker, one
# document at a time, for about this long at the pace of the clean run.
CUT_WORK_SECONDS = 2 * (REDIS_CUT_SECONDS + RESUME_WITHIN) + 10


def test_redis_silent_to_the_api_host_subscribers_resume_and_readyz_answers(
    hosts: Cluster, clean_run: CleanRun, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = min(60, max(4, math.ceil(CUT_WORK_SECONDS / clean_run.seconds)))
    worker = hosts.start_worker(WORKER_CONCURRENCY=1)
    worker.wait_started(STARTUP_SECONDS)

    async def scenario() -> dict[str, Any]:
        case_id = await hosts.create_case("Redis cut")
        ids = [
            await hosts.upload(case_id, _document(100 + n), f"cut-{n}.pdf")
            for n in range(documents)
        ]
        watcher = hosts.watch_case(case_id)
        last = hosts.watch(ids[-1])
        try:
            await watcher.until(lambda e: e["status"] == "EXTRACTING", within=60)
            published_before = await hosts.published(ids)
            try:
                hosts.network.cut(REDIS_PORT, hosts.data, hosts.api)
            except NetnsError as exc:
                unavailable(f"cannot drop packets on the switch (tc htb/u32): {exc}")
            cut = time.monotonic()

            async def probe(at: float) -> tuple[int | None, float, str]:
                await asyncio.sleep(at)
                return await hosts.readyz(limit=READYZ_LIMIT)

            probing = asyncio.gather(*(probe(at) for at in READYZ_PROBES))
            await asyncio.sleep(max(0.0, cut + REDIS_CUT_SECONDS - time.monotonic()))
            probes = await probing
            published_during = await hosts.published(ids) - published_before
            dropped = hosts.network.dropped(hosts.api) + hosts.network.dropped(hosts.data)
            hosts.network.restore()
            restored = time.monotonic()
            heard_during = [at - cut for at, _ in watcher.since(cut + 1.0) if at < restored]
            assert published_during > 0, "the worker published nothing during the cut"
            ready = await hosts.ready_count(ids)
            assert ready < len(ids), "all documents READY by the restore: give it more work"
            resumed = await watcher.first_since(restored, within=60)
            resume = None if resumed is None else resumed - restored
            after = await hosts.readyz(limit=READYZ_LIMIT)
            await last.until(lambda e: e["status"] == "READY", within=4 * CUT_WORK_SECONDS)
        finally:
            await watcher.close()
            await last.close()
        for document_id in ids:
            state = await hosts.document(document_id)
            assert state.status == "READY", (document_id, state.status)
        return {
            "probes": probes,
            "resume": resume,
            "heard_during": heard_during,
            "published_during": published_during,
            "dropped": dropped,
            "after": after,
        }

    result = hosts.run(scenario())
    probes = result["probes"]
    resume = result["resume"]
    report(
        capsys,
        f"Redis cut to the API host for {REDIS_CUT_SECONDS:.0f} s ({result['dropped']} packets "
        f"dropped, {result['published_during']} events published meanwhile): subscribers "
        + (f"resumed {resume:.2f} s after the restore" if resume is not None else "never resumed")
        + "; /readyz during the cut: "
        + ", ".join(f"{code or 'no answer'} in {seconds:.2f} s" for code, seconds, _ in probes)
        + f"; after: {result['after'][0]} in {result['after'][1]:.2f} s",
    )
    assert not result["heard_during"], f"events got through the cut: {result['heard_during']}"
    for code, seconds, body in probes:
        answer = f"{code or 'no answer'} after {seconds:.1f}s: {body}"
        assert code == 503, f"/readyz during the cut: {answer} (wanted 503)"
        assert seconds <= READYZ_WITHIN, f"/readyz during the cut: {answer} (too slow)"
    assert resume is not None, "subscribers got nothing within 60 s of the restore"
    assert resume <= RESUME_WITHIN, (
        f"subscribers resumed {resume:.1f}s after Redis came back (wanted {RESUME_WITHIN}s)"
    )
