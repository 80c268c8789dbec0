"""Queue latency: enqueue to start of a job, with the worker settings LexIntel ships versus
arq's defaults.

    python bench/queue_latency.py [--jobs 100] [--gap-ms 200 400]

Starts a throwaway embedded PostgreSQL + pgvector and Redis, then for each configuration one
real worker process (`lexintel_jobs.worker` options; arq's default configuration differs only
in its 0.5 s poll delay, where LexIntel polls every 0.1 s). Enqueues --jobs `document.process`
jobs one at a time, a random --gap-ms apart (so each arrives at an idle worker), for documents
that do not exist: each job starts, finds nothing to do and ends, so what is measured is the
queue, not the pipeline. Enqueue and start times come from the results arq records.
Prints a table and writes bench/results/queue_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job
from load import embedded_servers, percentile

from lexintel_core import keys
from lexintel_core.jobs import JobName, ProcessDocument, enqueue, json_dumps, json_loads
from lexintel_core.settings import Settings
from lexintel_jobs.worker import POLL_DELAY_SECONDS

ROOT = Path(__file__).resolve().parents[1]
ARQ_DEFAULT_POLL_DELAY = 0.5
# A worker with LexIntel's options, and the poll delay given as the first argument.
WORKER = """
import sys
from arq.worker import Worker
from lexintel_core.settings import Settings
from lexintel_jobs.worker import worker_options
Worker(**{**worker_options(Settings()), "poll_delay": float(sys.argv[1])}).run()
"""


async def measure(pool: ArqRedis, jobs: int, gap_ms: tuple[float, float]) -> list[float]:
    """Enqueue-to-start latency of each job, in milliseconds."""
    ids = []
    for _ in range(jobs):
        job_id = await enqueue(
            pool, JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=uuid.uuid4())
        )
        assert job_id is not None
        ids.append(job_id)
        await asyncio.sleep(random.uniform(*gap_ms) / 1000)  # noqa: S311 - not crypto
    latencies = []
    for job_id in ids:
        info = None
        while info is None:
            info = await Job(job_id, pool, _deserializer=json_loads).result_info()
            if info is None:
                await asyncio.sleep(0.05)
        latencies.append((info.start_time - info.enqueue_time).total_seconds() * 1000)
    return latencies


async def run_config(
    settings: Settings, poll_delay: float, args: argparse.Namespace
) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEXINTEL_")}
    env.update(
        LEXINTEL_DATABASE_URL=settings.database_url,
        LEXINTEL_REDIS_URL=settings.redis_url,
        LEXINTEL_EMBEDDING_PROVIDER="hashing",
    )
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        default_queue_name=keys.QUEUE_NAME,
        job_serializer=json_dumps,
        job_deserializer=json_loads,
    )
    await pool.flushdb()
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(poll_delay), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await measure(pool, 10, (0, 0))  # warm up: the worker is up and has its connections
        latencies = await measure(pool, args.jobs, tuple(args.gap_ms))
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
        await pool.aclose()
    return {
        "poll_delay_s": poll_delay,
        "jobs": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "max_ms": round(max(latencies), 1),
    }


async def run_configs(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "lexintel": await run_config(settings, POLL_DELAY_SECONDS, args),
        "arq_default": await run_config(settings, ARQ_DEFAULT_POLL_DELAY, args),
    }


def main(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="lexintel-queue-") as tmp,
        embedded_servers(Path(tmp)) as settings,
    ):
        results = asyncio.run(run_configs(settings, args))
    print(f"\n  {'worker':<14}{'poll delay':>12}{'p50':>10}{'p99':>10}{'mean':>10}{'max':>10}")
    for name, row in results.items():
        print(
            f"  {name:<14}{row['poll_delay_s']:>10.1f} s{row['p50_ms']:>7.1f} ms"
            f"{row['p99_ms']:>7.1f} ms{row['mean_ms']:>7.1f} ms{row['max_ms']:>7.1f} ms"
        )
    ratio = results["arq_default"]["p50_ms"] / max(results["lexintel"]["p50_ms"], 0.1)
    print(f"\n  p50 with arq's defaults / with LexIntel's: {ratio:.1f}x")
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    config = {**vars(args), "output": str(output)}
    output.write_text(json.dumps({"config": config, "results": results}, indent=2) + "\n")
    print(f"  wrote {output}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "queue_latency.json"
    )
    parser.add_argument("--gap-ms", type=float, nargs=2, default=[200.0, 400.0])
    sys.exit(main(parser.parse_args()))
