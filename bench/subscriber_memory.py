"""Where the API's memory per subscriber goes: a tracemalloc profile of N live subscriptions.

    python bench/subscriber_memory.py [--subscribers 1000] [--per-connection 1] [--top 12]

Starts throwaway embedded PostgreSQL + Redis and documents as bench/progress_latency.py does,
runs the API in this process (uvicorn, the shipped WebSocket settings) with tracemalloc on,
then opens --subscribers `documentProgress` subscriptions from a client process (--per-connection
on each WebSocket) and gives each its first event. Prints the traced memory growth per
subscriber and the allocation sites that hold it, by package and by line, and writes
bench/results/subscriber_memory.json. Tracing slows the process down: use
bench/progress_latency.py for the RSS figures, this script for where they come from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import sysconfig
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from load import embedded_servers
from progress_latency import ROOT, Bench, ClientProcess
from redis.asyncio import Redis

from lexintel_api.app import create_app
from lexintel_api.websocket import WS_PROTOCOL
from lexintel_core.embedded_servers import free_port
from lexintel_core.settings import Settings

SITE = sysconfig.get_paths()["purelib"] + "/"
# Allocation sites are charged to the innermost frame in a library or in LexIntel, else to
# the standard library module that made them (asyncio, mostly).
OWNERS = (SITE, str(ROOT / "lexintel_"))


def package(filename: str) -> str:
    """The package an allocation site belongs to: `websockets`, `strawberry`, `asyncio`..."""
    if filename.startswith(SITE):
        return filename[len(SITE) :].split("/")[0]
    if filename.startswith(str(ROOT)):
        return filename[len(str(ROOT)) + 1 :].split("/")[0]
    return Path(filename).parent.name or filename


async def profile(args: argparse.Namespace, settings: Settings, tmp: Path) -> dict[str, Any]:
    bench = Bench(args, settings, tmp)
    await bench.prepare(args.subscribers)
    port = free_port()
    config = uvicorn.Config(
        create_app(
            settings.model_copy(
                update={
                    "api_gc_freeze": True,
                    # One key holds every subscriber.
                    "api_max_subscriptions_per_organization": 1_000_000,
                    "api_max_subscriptions_per_key": 1_000_000,
                }
            )
        ),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_per_message_deflate=False,
        ws=WS_PROTOCOL,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # start-up failed: raise its error
        await asyncio.sleep(0.05)
    documents = bench.documents[: args.subscribers]
    spec = {
        "api": f"http://127.0.0.1:{port}",
        "key": bench.key,
        "mode": "ws",
        "per_connection": args.per_connection,
        # Under tracing the API is slow: more at once would time out waiting for the database.
        "connect_at_once": 2,
        "documents": [(i, str(d)) for i, d in enumerate(documents)],
    }
    async with Redis.from_url(settings.redis_url) as redis:
        tracemalloc.start(args.frames)
        before = tracemalloc.take_snapshot()
        client = ClientProcess(spec, tmp, 0)
        await asyncio.to_thread(client.expect, "subscribed")
        for document_id in documents:
            await bench.publish(redis, bench.next_event(document_id))
        await asyncio.to_thread(client.expect, "warm")
        await asyncio.sleep(1)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        errors = (await asyncio.to_thread(client.finish))["errors"]
        if errors:
            raise SystemExit(f"{len(errors)} subscription(s) failed, e.g. {errors[0]}")
    server.should_exit = True
    await serving
    return report(args, after.compare_to(before, "traceback"))


def report(args: argparse.Namespace, diff: list[tracemalloc.StatisticDiff]) -> dict[str, Any]:
    n = args.subscribers
    total = sum(stat.size_diff for stat in diff)
    by_package: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    for stat in diff:
        frames = list(reversed(stat.traceback))  # the most recent first
        owner = next((f for f in frames if f.filename.startswith(OWNERS)), None)
        frame = owner or frames[0]
        by_package[package(frame.filename)] += stat.size_diff
        by_line[f"{package(frame.filename)}: {Path(frame.filename).name}:{frame.lineno}"] += (
            stat.size_diff
        )
    print(f"\ntraced growth: {total / 1024:.0f} KiB for {n} subscribers: {total / n / 1024:.1f} "
          f"KiB each ({args.per_connection} per connection)\n")  # fmt: skip
    print(f"{'package':40} {'KiB/subscriber':>14}")
    for name, size in by_package.most_common(args.top):
        print(f"{name:40} {size / n / 1024:>14.2f}")
    print(f"\n{'allocation site':70} {'KiB/subscriber':>14}")
    for name, size in by_line.most_common(args.top):
        print(f"{name[:70]:70} {size / n / 1024:>14.2f}")
    return {
        "subscribers": n,
        "per_connection": args.per_connection,
        "traced_kib_per_subscriber": round(total / n / 1024, 2),
        "by_package_kib": {k: round(v / n / 1024, 2) for k, v in by_package.most_common(30)},
        "by_site_kib": {k: round(v / n / 1024, 2) for k, v in by_line.most_common(30)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--per-connection", type=int, default=1)
    parser.add_argument("--frames", type=int, default=12, help="traceback depth")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "subscriber_memory.json"
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="lexintel-memory-", ignore_cleanup_errors=True) as t,
        embedded_servers(Path(t)) as settings,
    ):
        result = asyncio.run(profile(args, settings, Path(t)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
