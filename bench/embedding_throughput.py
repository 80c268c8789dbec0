"""Embedding throughput: chunks/s of the hashing and the MiniLM (sentence-transformers) providers.

    python bench/embedding_throughput.py [--chunks 256] [--batch-sizes 8 32 64] [--repeat 3]
        [--providers hashing sentence-transformers] [--device cpu|cuda]

Uses the project's own provider classes (`HashingEmbedder`, `SentenceTransformerEmbedder` with
the packaged all-MiniLM-L6-v2, loaded offline) on realistic chunks: generated legal-ish pages
cut by the project's chunker at the shipped chunk size (LEXINTEL_CHUNK_SIZE_TOKENS, default
224 tokens, 32 overlap). For each provider and batch size (the provider's `batch_size`, and the
slice handed to each `embed` call, as the worker's embed stage does) it builds the embedder,
loads it (timed apart), warms up on one batch, then embeds all --chunks chunks --repeat times;
chunks/s is the median over the repeats. --device goes to sentence-transformers (`cuda` where a
GPU exists); the hashing provider is pure Python on the CPU whatever the device.
Prints a table and writes bench/results/embedding_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

from load import VOCABULARY, log

from lexintel_core.chunking import PageText, chunk_pages
from lexintel_core.embeddings import (
    PACKAGED_MODEL,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    semantic_extra_available,
)
from lexintel_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = ("hashing", "sentence-transformers")


def make_chunks(count: int, settings: Settings, seed: int) -> list[str]:
    """At least `count` chunk texts: generated pages of paragraphs, cut by the chunker."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic text
    chunks: list[str] = []
    pages: list[PageText] = []
    while len(chunks) < count:
        paragraphs = [
            " ".join(
                " ".join(rng.choices(VOCABULARY, k=rng.randint(8, 20))).capitalize() + "."
                for _ in range(rng.randint(2, 6))
            )
            for _ in range(rng.randint(3, 6))
        ]
        pages.append(PageText(len(pages) + 1, "\n\n".join(paragraphs)))
        chunks = [
            chunk.text
            for chunk in chunk_pages(
                pages,
                size_tokens=settings.chunk_size_tokens,
                overlap_tokens=settings.chunk_overlap_tokens,
            )
        ]
    return chunks[:count]


def build(provider: str, batch_size: int, args: argparse.Namespace) -> Embedder:
    if provider == "hashing":
        return HashingEmbedder(args.dimension, batch_size=batch_size)
    return SentenceTransformerEmbedder(PACKAGED_MODEL, device=args.device, batch_size=batch_size)


async def measure(
    provider: str, batch_size: int, chunks: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    embedder = build(provider, batch_size, args)
    try:
        started = time.perf_counter()
        await embedder.load()
        load_s = time.perf_counter() - started
        await embedder.embed(chunks[:batch_size])  # warm-up
        runs = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            for start in range(0, len(chunks), batch_size):  # one call per batch, like the worker
                vectors = await embedder.embed(chunks[start : start + batch_size])
                assert len(vectors[0]) == embedder.dimension
            runs.append(time.perf_counter() - started)
    finally:
        await embedder.aclose()
    seconds = statistics.median(runs)
    return {
        "provider": provider,
        "model": embedder.model_name,
        "device": args.device if provider != "hashing" else "cpu",
        "batch_size": batch_size,
        "chunks": len(chunks),
        "load_s": load_s,
        "seconds_median": seconds,
        "seconds_all": runs,
        "chunks_per_s": len(chunks) / seconds,
        "ms_per_chunk": seconds / len(chunks) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    parser.add_argument("--device", default="cpu", help="for sentence-transformers: cpu, cuda")
    parser.add_argument("--dimension", type=int, default=384, help="of the hashing embedder")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench/results/embedding_throughput.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings(_env_file=None)
    chunks = make_chunks(args.chunks, settings, args.seed)
    mean_chars = statistics.fmean(len(chunk) for chunk in chunks)
    log(f"{len(chunks)} chunks, {mean_chars:.0f} characters on average")
    results = []
    for provider in args.providers:
        if provider == "sentence-transformers" and not semantic_extra_available():
            log("sentence-transformers is not installed: skipped")
            continue
        for batch_size in args.batch_sizes:
            results.append(asyncio.run(measure(provider, batch_size, chunks, args)))
            log(f"{provider} batch {batch_size}: {results[-1]['chunks_per_s']:.1f} chunks/s")
    threads = None
    if any(r["provider"] == "sentence-transformers" for r in results):
        import torch

        threads = torch.get_num_threads()
    print(f"\n  {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch "
          f"threads {threads}; {len(chunks)} chunks of {mean_chars:.0f} characters, median of "
          f"{args.repeat}\n")  # fmt: skip
    head = (
        f"  {'provider':24}{'device':>7}{'batch':>7}{'chunks/s':>10}{'ms/chunk':>10}{'load s':>8}"
    )
    print(head + "\n  " + "-" * (len(head) - 2))
    for r in results:
        print(f"  {r['provider']:24}{r['device']:>7}{r['batch_size']:>7}{r['chunks_per_s']:>10.1f}"
              f"{r['ms_per_chunk']:>10.2f}{r['load_s']:>8.2f}")  # fmt: skip
    output: dict[str, Any] = {
        "config": {**vars(args), "output": str(args.output), "cpus": os.cpu_count()},
        "chunk_size_tokens": settings.chunk_size_tokens,
        "mean_chunk_chars": mean_chars,
        "torch_threads": threads,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\n  wrote {args.output}")


if __name__ == "__main__":
    main()
