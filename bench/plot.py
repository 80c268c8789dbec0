"""Draw the progress latency and memory curves of bench/progress_latency.py's results.

python bench/plot.py [--results bench/results/progress_latency.json]
                     [--output docs/progress_latency.png]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
# Below this many subscribers, RSS growth is the allocator's noise, not their cost.
MEMORY_FROM = 100
TRANSPORTS = {"ws": "WebSocket", "sse": "SSE", "poll": "polling every 2 s (baseline)"}


def curve(scenarios: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The transport's scenarios with shipped settings, by subscriber count."""
    plain = [s for s in scenarios if s["name"] == f"{mode}-{s['subscribers']}"]
    return sorted(plain, key=lambda s: s["subscribers"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=Path, default=ROOT / "bench" / "results" / "progress_latency.json"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "progress_latency.png")
    args = parser.parse_args(argv)
    scenarios = json.loads(args.results.read_text())["scenarios"]

    figure, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, label in TRANSPORTS.items():
        points = curve(scenarios, mode)
        if not points:
            continue
        x = [s["subscribers"] for s in points]
        (line,) = latency.plot(x, [s["latency"]["p50_ms"] for s in points], "o-", label=label)
        latency.plot(
            x, [s["latency"]["p99_ms"] for s in points], "o--", color=line.get_color(), alpha=0.6
        )
        many = [s for s in points if s["subscribers"] >= MEMORY_FROM]
        if mode != "poll" and many:
            y = [s["rss_per_subscriber_kib"] for s in many]
            memory.plot([s["subscribers"] for s in many], y, "o-", label=label)
    shared = sorted(
        (s for s in scenarios if s["name"].endswith("-25-per-connection")),
        key=lambda s: s["subscribers"],
    )
    if shared:
        x = [s["subscribers"] for s in shared]
        y = [s["rss_per_subscriber_kib"] for s in shared]
        memory.plot(x, y, "o-", label="WebSocket, 25 subscriptions per connection")
    baseline = [s for s in scenarios if s["name"].endswith("per-subscriber-hub")]
    for s in baseline:
        memory.plot(
            s["subscribers"], s["rss_per_subscriber_kib"], "s", color="black",
            label="WebSocket, one Pub/Sub connection per subscriber (baseline)",
        )  # fmt: skip
    latency.set(
        xscale="log", yscale="log", xlabel="concurrent subscribers (one API process)",
        ylabel="publish to receipt (ms)", title="Progress latency: p50 (solid), p99 (dashed)",
    )  # fmt: skip
    latency.axhline(2, color="grey", linewidth=0.8, linestyle=":")
    latency.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    memory.set(
        xscale="log", xlabel="concurrent subscribers (one API process)",
        ylabel="API RSS growth per subscriber (KiB)", title="Memory per subscriber",
    )  # fmt: skip
    memory.axhline(32, color="grey", linewidth=0.8, linestyle=":")
    memory.set_ylim(bottom=0)
    for axes in (latency, memory):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
