"""Pipeline throughput: pages/s and documents/min through the real API and arq workers.

    python bench/pipeline_throughput.py [--workers 1 2] [--engines pypdfium2 pypdf]
        [--corpus ../shared/corpus/pdf-samples] [--big-pages 500] [--repeat 3] [--clients 4]
        [--embedding hashing|sentence-transformers] [--workloads corpus big]

Starts a throwaway embedded PostgreSQL + pgvector and Redis, migrates, runs the API (uvicorn),
then for each PDF engine (LEXINTEL_PDF_ENGINE) and worker count a "cell" of that many workers:
arq's worker with `lexintel_jobs.worker.WorkerSettings` (shipped options), hashing embeddings
by default (--embedding sentence-transformers: the packaged MiniLM on the CPU; the model alone
is measured by bench/embedding_throughput.py), with timers wrapped around the three work calls
(below). A cell warms up on 4 small documents per worker, then runs
--repeat rounds of two workloads, uploaded by --clients clients with `uploadDocument`:

- corpus: every *.pdf under --corpus. Encrypted, damaged and image-only samples end FAILED:
  they count as documents, but pages/s counts only the pages of READY documents;
- big: one generated --big-pages text PDF (new content each round). One document is one job,
  so a second worker has nothing to do here.

Each round starts from empty tables (TRUNCATE cases, blobs): a growing HNSW vector index makes
every later insert slower, which would make later rounds and cells incomparable. Throughput:
READY pages and terminal documents over the wall time from the first upload sent to the last
document's finished_at; the median over the rounds.

Job overhead, from sums over all documents of all rounds of a cell:
- total = finish_time - enqueue_time of the document's `document.process` job as arq records
  them (the upload request before the enqueue is left out; its p50 is reported apart);
- queue wait = start_time - enqueue_time: with a burst of uploads mostly backlog (documents
  waiting for a free job slot), not pickup latency;
- work = wall time inside `Extractor.extract` (parsing in the extraction child; it includes the
  per-page callbacks it awaits, a cancel check and a throttled progress publish, which overlap
  the parsing: their sum is shown as "page cb"), `chunk_pages` and `embedder.embed`, timed in
  the worker process around exactly those calls;
- in-job overhead = (finish_time - start_time) - work: blob download from PostgreSQL, status
  transitions, the chunk insert and the vector updates, the lease, progress publishes
  and cancel checks between stages and batches, arq's bookkeeping. It is split by stage with
  the document's extracting_at / chunking_at / embedding_at / finished_at stamps.
overhead share = (queue wait + in-job overhead) / total; in-job share = in-job overhead /
(finish_time - start_time), the part that does not depend on the backlog.

Writes per chunk, READY documents of a workload, median of the rounds: "stage writes" = the
chunking and embedding stages' in-job overhead over the chunks stored (whatever the pipeline
writes the chunks and their vectors with, plus its progress and cancel checks there), the same
measure for any version of lexintel_jobs/pipeline.py; "vector write" = wall time inside
`pipeline.write_chunks` (the one transaction writing chunks with their vectors) over the
chunks stored, where the pipeline has that function.

Prints tables and writes bench/results/pipeline_throughput.json (--output). PostgreSQL, Redis,
the API, the workers and this script share the machine's CPUs: quote the CPU count with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from arq.connections import RedisSettings, create_pool
from arq.jobs import JobResult
from load import (
    CREATE_CASE,
    Pdf,
    Processes,
    RssSampler,
    Run,
    child_env,
    embedded_servers,
    graphql,
    log,
    make_pdf,
    new_key,
    percentile,
    upload_one,
    wait_ready,
)
from sqlalchemy import func, select, text

from lexintel_core import keys
from lexintel_core.db import SessionFactory, create_session_factory, engine_for
from lexintel_core.embedded_servers import free_port
from lexintel_core.jobs import JobName, json_dumps, json_loads
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.extraction import PDF_ENGINES

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("corpus", "big")
WORK = ("extract", "chunk", "embed")
STAGES = ("setup", "extracting", "chunking", "embedding", "after")
STAGE_WORK = {"extracting": "extract", "chunking": "chunk", "embedding": "embed"}
# arq's worker with LexIntel's WorkerSettings (as `arq lexintel_jobs.worker.WorkerSettings`
# runs it), after wrapping the three work calls in timers that append
# [document id, what, seconds] lines to the file named by the first argument.
TIMED_WORKER = r"""
import functools, json, logging.config, sys, threading, time
from arq.logs import default_log_config
from arq.worker import run_worker
from lexintel_core import embeddings
from lexintel_jobs import logs, pipeline
from lexintel_jobs.extraction import Extractor

out, lock = open(sys.argv[1], "a", buffering=1), threading.Lock()

def record(what, started):
    line = json.dumps([logs._document_id.get(), what, time.perf_counter() - started]) + "\n"
    with lock:
        out.write(line)

def timed(what, function):
    @functools.wraps(function)
    async def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            record(what, started)
    return wrapper

extract, chunk_pages = Extractor.extract, pipeline.chunk_pages

async def extract_timing_pages(self, path, on_page=None):
    return await extract(self, path, on_page and timed("page_callbacks", on_page))

def chunk(*args, **kwargs):
    started = time.perf_counter()
    try:
        return chunk_pages(*args, **kwargs)
    finally:
        record("chunk", started)

Extractor.extract = timed("extract", extract_timing_pages)
pipeline.chunk_pages = chunk
if hasattr(pipeline, "write_chunks"):  # not a work call: a part of the in-job overhead
    pipeline.write_chunks = timed("write", pipeline.write_chunks)
for provider in (embeddings.HashingEmbedder, embeddings.SentenceTransformerEmbedder):
    provider.embed = timed("embed", provider.embed)
logging.config.dictConfig(default_log_config(False))
from lexintel_jobs.worker import WorkerSettings
run_worker(WorkerSettings)
"""


class TimedWorkers(Processes):
    """Worker processes only (no API): arq's worker with the timers of TIMED_WORKER."""

    def start_timed(self, count: int, timings: Path) -> None:
        command = [sys.executable, "-c", TIMED_WORKER, str(timings)]
        self.workers += [self._spawn(f"worker-{index}", command) for index in range(count)]


class Bench:
    """What one cell's rounds need: the API, the database, the queue, the worker group."""

    def __init__(self, args: argparse.Namespace, api_url: str, key: str, settings: Settings):
        self.args, self.api_url, self.key, self.settings = args, api_url, key, settings
        self.seed = args.seed

    async def run_cell(
        self, group: TimedWorkers, workers: int, timings: Path, corpus: list[Pdf]
    ) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.key}", "GraphQL-Require-Preflight": "1"}
        pool = await create_pool(
            RedisSettings.from_dsn(self.settings.redis_url),
            default_queue_name=keys.QUEUE_NAME,
            job_serializer=json_dumps,
            job_deserializer=json_loads,
        )
        async with (
            engine_for(self.settings) as engine,
            httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=300) as client,
        ):
            self.client, self.pool, self.group = client, pool, group
            self.sessions: SessionFactory = create_session_factory(engine)
            try:
                await self.wait_workers(workers)
                warm_up = [self.pdf("warm", 2) for _ in range(4 * workers)]
                await self.workload("warm-up", warm_up, timings)
                rounds = []
                for number in range(self.args.repeat):
                    for name, pdfs in (
                        ("corpus", corpus),
                        ("big", [self.pdf("big", self.args.big_pages)]),
                    ):
                        if name not in self.args.workloads:
                            continue
                        result = await self.workload(name, pdfs, timings)
                        rounds.append({"workload": name, "round": number, **result})
                        log(
                            f"  {name} round {number + 1}: {result['pages_ready']} pages in "
                            f"{result['wall_s']:.2f} s, {result['pages_per_s']:.1f} pages/s"
                        )
            finally:
                await pool.aclose()
        return rounds

    def pdf(self, kind: str, pages: int) -> Pdf:
        self.seed += 1
        content = make_pdf(self.seed, pages, random.Random(self.seed))  # noqa: S311
        return Pdf(self.seed, f"{kind}-{self.seed}.pdf", content, pages)

    async def wait_workers(self, count: int) -> None:
        """Until `count` workers have started up (their heartbeat keys are set)."""
        deadline = time.monotonic() + 120
        while len(await self.pool.keys(keys.worker_key("*"))) < count:
            self.group.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} worker(s) did not start in 120 s")
            await asyncio.sleep(0.2)

    async def workload(self, name: str, pdfs: list[Pdf], timings: Path) -> dict[str, Any]:
        async with self.sessions.begin() as session:  # every round starts from empty tables
            await session.execute(text("TRUNCATE cases, blobs CASCADE"))
        data = await graphql(self.client, CREATE_CASE, name=f"{name} {uuid.uuid4().hex[:8]}")
        case_id = data["createCase"]["id"]
        run, pending = Run(), list(pdfs)

        async def uploader() -> None:
            while pending:
                pdf = pending.pop(0)
                document_id = await upload_one(self.client, case_id, pdf, run)
                if document_id is not None:
                    run.document_ids[document_id] = pdf

        await asyncio.gather(*(uploader() for _ in range(self.args.clients)))
        if run.upload_errors:
            raise RuntimeError(f"upload failures: {run.upload_errors[:5]}")
        rows = await self.wait_terminal(uuid.UUID(case_id), len(run.document_ids))
        jobs = await self.job_results(set(run.document_ids))
        chunks = await self.chunk_counts(uuid.UUID(case_id))
        return figures(run, rows, jobs, read_work(timings), chunks)

    async def chunk_counts(self, case_id: uuid.UUID) -> dict[str, int]:
        query = (
            select(DocumentChunk.document_id, func.count())
            .where(DocumentChunk.case_id == case_id)
            .group_by(DocumentChunk.document_id)
        )
        async with self.sessions() as session:
            return {str(document_id): count for document_id, count in await session.execute(query)}

    async def wait_terminal(self, case_id: uuid.UUID, count: int) -> list[Document]:
        deadline = time.monotonic() + self.args.timeout
        query = select(Document).where(Document.case_id == case_id)
        while True:
            async with self.sessions() as session:
                rows = list(await session.scalars(query))
            if len(rows) == count and all(row.status.is_terminal for row in rows):
                return rows
            self.group.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"documents not finished after {self.args.timeout} s")
            await asyncio.sleep(0.1)

    async def job_results(self, document_ids: set[str]) -> dict[str, JobResult]:
        """arq's result of each document's job (written just after the document's commit)."""
        for _ in range(100):
            results = {
                str(result.args[0]["document_id"]): result
                for result in await self.pool.all_job_results()
                if result.function == str(JobName.DOCUMENT_PROCESS)
                and str(result.args[0]["document_id"]) in document_ids
            }
            if len(results) == len(document_ids):
                return results
            await asyncio.sleep(0.1)
        raise RuntimeError(f"arq results for {len(results)} of {len(document_ids)} documents")


def read_work(timings: Path) -> dict[str, dict[str, float]]:
    """The workers' timer lines, summed per document and kind of work."""
    work: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in timings.read_text().splitlines():
        document_id, what, seconds = json.loads(line)
        work[document_id][what] += seconds
    return work


def document_times(row: Document, job: JobResult, work: dict[str, float]) -> dict[str, float]:
    """One document's time breakdown (seconds). The in-job overhead is split by the stage it
    falls in: the stretches between arq's start, the document's extracting_at, chunking_at,
    embedding_at and finished_at stamps, and arq's finish, less the work timed in each."""
    enqueued, start, finish = (
        t.timestamp() for t in (job.enqueue_time, job.start_time, job.finish_time)
    )
    times = {
        "total": finish - enqueued,
        "queue": start - enqueued,
        "run": finish - start,
        **{what: work.get(what, 0.0) for what in (*WORK, "page_callbacks")},
        "in_job_overhead": finish - start - sum(work.get(what, 0.0) for what in WORK),
    }
    marks = [("setup", start)] + [
        (stage, stamp(value))
        for stage, value in zip(
            STAGES[1:],
            (row.extracting_at, row.chunking_at, row.embedding_at, row.finished_at),
            strict=True,
        )
        if value is not None
    ]
    for (stage, begin), end in zip(marks, [at for _, at in marks[1:]] + [finish], strict=True):
        times[f"overhead_{stage}"] = end - begin - work.get(STAGE_WORK.get(stage, ""), 0.0)
    return times


def stamp(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def figures(
    run: Run,
    rows: list[Document],
    jobs: dict[str, JobResult],
    work: dict[str, Any],
    chunks: dict[str, int],
) -> dict[str, Any]:
    ready = [row for row in rows if row.status is ProcessingStatus.READY]
    stage_writes = write = 0.0
    for row in ready:
        own = document_times(row, jobs[str(row.id)], work[str(row.id)])
        stage_writes += own["overhead_chunking"] + own["overhead_embedding"]
        write += work[str(row.id)].get("write", 0.0)
    stored = sum(chunks.get(str(row.id), 0) for row in ready)
    assert run.first_upload is not None
    wall = max(stamp(row.finished_at) for row in rows if row.finished_at) - run.first_upload
    pages = sum(row.page_count or 0 for row in ready)
    times: dict[str, float] = defaultdict(float)
    for row in rows:
        for what, seconds in document_times(row, jobs[str(row.id)], work[str(row.id)]).items():
            times[what] += seconds
    return {
        "documents": len(rows),
        "ready": len(ready),
        "failed": sorted(f"{r.filename}: {r.error_code}" for r in rows if r not in ready),
        "pages_ready": pages,
        "wall_s": wall,
        "pages_per_s": pages / wall,
        "documents_per_min": len(rows) / wall * 60,
        "upload_ms_p50": percentile(run.uploads_ms, 50),
        "times_s": dict(times),
        "chunks": stored,
        "stage_writes_ms_per_chunk": stage_writes / max(stored, 1) * 1000,
        "vector_write_ms_per_chunk": write / stored * 1000 if write and stored else None,
    }


def summarise(rounds: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    """Median throughput over the rounds of one workload; time breakdown summed over them."""
    mine = [r for r in rounds if r["workload"] == workload]
    times: dict[str, float] = defaultdict(float)
    for result in mine:
        for what, seconds in result["times_s"].items():
            times[what] += seconds
    total, run = times["total"] or 1e-9, times["run"] or 1e-9
    documents = sum(r["documents"] for r in mine)
    return {
        "documents": mine[0]["documents"],
        "ready": mine[0]["ready"],
        "chunks": mine[0]["chunks"],
        "stage_writes_ms_per_chunk": statistics.median(
            r["stage_writes_ms_per_chunk"] for r in mine
        ),
        "vector_write_ms_per_chunk": (
            statistics.median(r["vector_write_ms_per_chunk"] for r in mine)
            if all(r["vector_write_ms_per_chunk"] is not None for r in mine)
            else None
        ),
        "pages_ready": mine[0]["pages_ready"],
        "failed": mine[0]["failed"],
        **{
            what: statistics.median(r[what] for r in mine)
            for what in ("wall_s", "pages_per_s", "documents_per_min", "upload_ms_p50")
        },
        "times_s": dict(times),
        "overhead_share": (times["queue"] + times["in_job_overhead"]) / total,
        "queue_share": times["queue"] / total,
        "in_job_overhead_share": times["in_job_overhead"] / run,
        "work_share": {what: times[what] / total for what in WORK},
        "overhead_ms_per_document": {
            stage: times[f"overhead_{stage}"] / documents * 1000 for stage in STAGES
        },
        "page_callbacks_ms_per_document": times["page_callbacks"] / documents * 1000,
    }


def run_cells(
    args: argparse.Namespace, tmp: Path, settings: Settings, on_exit: Callable[..., Any]
) -> dict[str, Any]:
    key = asyncio.run(new_key(settings))
    paths = sorted(args.corpus.rglob("*.pdf"))
    if not paths:
        raise SystemExit(f"no PDF under {args.corpus}")
    corpus = [Pdf(i, path.name, path.read_bytes(), 0) for i, path in enumerate(paths)]
    env = child_env(settings, tmp / "data", args.embedding)
    api = Processes(tmp / "logs", env, tmp)
    (tmp / "logs").mkdir()
    on_exit(api.stop)
    port = free_port()
    api.start_api(port)
    wait_ready(f"http://127.0.0.1:{port}", api)
    assert api.api is not None
    log(f"API ready; {len(corpus)} corpus PDFs from {args.corpus}")
    bench = Bench(args, f"http://127.0.0.1:{port}", key, settings)
    cells = []
    for engine in args.engines:
        for workers in args.workers:
            name = f"{engine}-{workers}w"
            (tmp / "logs" / name).mkdir()
            group = TimedWorkers(tmp / "logs" / name, {**env, "LEXINTEL_PDF_ENGINE": engine}, tmp)
            timings = tmp / f"timings-{name}.jsonl"
            timings.touch()
            log(f"{name}: starting {workers} worker(s), PDF engine {engine}")
            try:
                group.start_timed(workers, timings)
                sampler = RssSampler(api.api.pid, [worker.pid for worker in group.workers])
                sampler.start()
                rounds = asyncio.run(bench.run_cell(group, workers, timings, corpus))
                sampler.stop()
            except BaseException:
                for path in sorted((tmp / "logs" / name).glob("*.log")):
                    print(f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}")
                raise
            finally:
                group.stop()
            cells.append({
                "engine": engine, "workers": workers,
                **{workload: summarise(rounds, workload) for workload in args.workloads},
                "workers_peak_rss_mb": sampler.workers_sum_peak / 2**20,
                "workers_cpu_s": sampler.workers_cpu, "rounds": rounds,
            })  # fmt: skip
    return {"config": {**vars(args), "corpus_files": len(corpus)}, "cells": cells}


def report(result: dict[str, Any]) -> None:
    cells, workloads = result["cells"], result["config"]["workloads"]
    rows = [(f"{c['engine']} {c['workers']}w", w, c[w], c) for c in cells for w in workloads]
    print(f"\n  {result['config']['cpus']} CPUs, {result['config']['embedding']} embeddings; "
          "throughput: median of the rounds; shares: "
          "per-document times summed over the rounds\n  overhead = (queue + in-job overhead) / "
          "total; queue, extract, chunk, embed: shares of total;\n  in-job = in-job overhead / "
          "(arq start -> finish)\n")  # fmt: skip
    head = (f"  {'cell':14}{'workload':9}{'docs':>5}{'ready':>6}{'pages':>6}{'wall s':>8}"
            f"{'pages/s':>9}{'docs/min':>9}{'upload':>8}{'overhead':>9}{'queue':>7}{'in-job':>7}"
            f"{'extract':>8}{'chunk':>6}{'embed':>6}")  # fmt: skip
    print(head + "\n  " + "-" * (len(head) - 2))
    for label, workload, s, _ in rows:
        work = s["work_share"]
        print(f"  {label:14}{workload:9}{s['documents']:>5}{s['ready']:>6}{s['pages_ready']:>6}"
              f"{s['wall_s']:>8.2f}{s['pages_per_s']:>9.1f}{s['documents_per_min']:>9.0f}"
              f"{s['upload_ms_p50']:>6.0f}ms{s['overhead_share']:>9.0%}{s['queue_share']:>7.0%}"
              f"{s['in_job_overhead_share']:>7.0%}{work['extract']:>8.0%}{work['chunk']:>6.0%}"
              f"{work['embed']:>6.0%}")  # fmt: skip
    print("\n  in-job overhead per document (ms) by stage; page callbacks (cancel check + "
          "progress, overlapping extraction):")  # fmt: skip
    print(f"  {'cell':14}{'workload':9}" + "".join(f"{stage:>11}" for stage in STAGES)
          + f"{'page cb':>10}{'workers peak RSS':>18}")  # fmt: skip
    for label, workload, s, cell in rows:
        stages = "".join(f"{s['overhead_ms_per_document'][st]:>11.1f}" for st in STAGES)
        print(f"  {label:14}{workload:9}{stages}{s['page_callbacks_ms_per_document']:>10.1f}"
              f"{cell['workers_peak_rss_mb']:>14.0f} MiB")  # fmt: skip
    print("\n  writes per chunk (ms), median of the rounds: stage writes = chunking + embedding "
          "stage overhead / chunks;\n  vector write = pipeline.write_chunks / chunks:")  # fmt: skip
    print(f"  {'cell':14}{'workload':9}{'chunks':>8}{'stage writes':>14}{'vector write':>14}")
    for label, workload, s, _ in rows:
        vector = s["vector_write_ms_per_chunk"]
        print(f"  {label:14}{workload:9}{s['chunks']:>8}{s['stage_writes_ms_per_chunk']:>14.3f}"
              + (f"{vector:>14.3f}" if vector is not None else f"{'n/a':>14}"))  # fmt: skip
    for name, ratio in result["ratios"].items():
        print(f"  pages/s pypdfium2 / pypdf, {name}: {ratio:.1f}x")
    failed = rows[0][2]["failed"] if rows and rows[0][1] == "corpus" else []
    print(f"  corpus documents FAILED ({len(failed)}): " + "; ".join(failed))


def engine_ratios(cells: list[dict[str, Any]]) -> dict[str, float]:
    rate = {
        (c["engine"], c["workers"], w): c[w]["pages_per_s"]
        for c in cells
        for w in WORKLOADS
        if w in c
    }
    return {
        f"{workload}, {workers} worker(s)": rate[("pypdfium2", workers, workload)] / pdf_rate
        for (engine, workers, workload), pdf_rate in rate.items()
        if engine == "pypdf" and ("pypdfium2", workers, workload) in rate and pdf_rate > 0
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    engines = [e for e in reversed(PDF_ENGINES) if importlib.util.find_spec(e) is not None]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", choices=PDF_ENGINES, default=engines)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpus/pdf-samples")
    parser.add_argument("--big-pages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each workload")
    parser.add_argument("--clients", type=int, default=4, help="concurrent uploaders")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for one workload")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--embedding", choices=("hashing", "sentence-transformers"), default="hashing"
    )
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench/results/pipeline_throughput.json"
    )
    args = parser.parse_args(argv)
    if min(args.workers) < 1 or args.repeat < 1 or args.clients < 1 or args.big_pages < 1:
        parser.error("--workers, --repeat, --clients and --big-pages must be >= 1")
    args.cpus = os.cpu_count()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop everything on the way out
    with (
        tempfile.TemporaryDirectory(prefix="lexintel-pipeline-", ignore_cleanup_errors=True) as tmp,
        contextlib.ExitStack() as stack,
    ):
        settings = stack.enter_context(embedded_servers(Path(tmp)))
        result = run_cells(args, Path(tmp), settings, stack.callback)
    result["ratios"] = engine_ratios(result["cells"])
    result["config"] = {
        k: str(v) if isinstance(v, Path) else v for k, v in result["config"].items()
    }
    report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n  wrote {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
