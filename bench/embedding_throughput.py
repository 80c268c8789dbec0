"""Embedding throughput: chunks/s of the hashing provider and of MiniLM per backend (torch,
ONNX Runtime fp32, ONNX Runtime int8), and each backend's retrieval quality.

    python bench/embedding_throughput.py [--chunks 256] [--batch-sizes 8 32 64] [--repeat 3]
        [--providers hashing sentence-transformers] [--backends torch onnx onnx-int8]
        [--orders length cut] [--device cpu|cuda] [--quality]

Uses the project's own provider classes (`HashingEmbedder`, `SentenceTransformerEmbedder` with
the packaged all-MiniLM-L6-v2, loaded offline) on realistic chunks: generated legal-ish pages
cut by the project's chunker at the shipped chunk size (LEXINTEL_CHUNK_SIZE_TOKENS, default
224 tokens, 32 overlap). Each embedder is built and loaded once (load timed apart; the ONNX
backends export into a temporary cache first, timed as load) and warmed up; then, --repeat
rounds, each embeds all --chunks chunks once per embedder and batch size (one `embed` call
per batch, as the worker's embed stage does), the embedders in a rotating order so that a
change of machine load hits them all alike. --orders: the chunks shortest first, as the worker
batches them (`length`), or in the order the chunker cut them (`cut`, as the worker did before
issue 19). chunks/s is the median over the rounds, and "x torch" the median over the rounds of
its speed over torch's at the shipped batch size (32) in cut order in the same round (or in
the first order given, without `cut`).

--quality also runs the retrieval evaluation of tests/core/test_search_quality.py (the legal
corpus, and the court filings where ../shared/corpus is present) with each backend on a
throwaway embedded PostgreSQL, and prints R@5 / MRR@10 of SEMANTIC and HYBRID per backend.
Prints tables and writes bench/results/embedding_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

from load import VOCABULARY, log

from lexintel_core.chunking import PageText, chunk_pages
from lexintel_core.embeddings import (
    PACKAGED_MODEL,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    semantic_extra_available,
)
from lexintel_core.settings import EmbeddingBackend, Settings

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = ("hashing", "sentence-transformers")
BACKENDS: tuple[EmbeddingBackend, ...] = get_args(EmbeddingBackend)
SHIPPED_BATCH = 32


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


def build(name: str, batch_size: int, args: argparse.Namespace, onnx_cache: Path) -> Embedder:
    """`name`: "hashing" or a backend of the sentence-transformers provider."""
    if name == "hashing":
        return HashingEmbedder(args.dimension, batch_size=batch_size)
    backend: EmbeddingBackend = name  # type: ignore[assignment]
    return SentenceTransformerEmbedder(
        PACKAGED_MODEL,
        device=args.device,
        batch_size=batch_size,
        backend=backend,
        onnx_cache=onnx_cache,
    )


async def throughput(
    names: list[str], chunks: list[str], args: argparse.Namespace, onnx_cache: Path
) -> list[dict[str, Any]]:
    """chunks/s per embedder and batch size, the embedders interleaved round by round."""
    embedders: dict[str, Embedder] = {}
    load_s: dict[str, float] = {}
    runs: dict[tuple[str, int, str], list[float]] = {}
    try:
        for name in names:
            embedders[name] = build(name, max(args.batch_sizes), args, onnx_cache)
            started = time.perf_counter()
            await embedders[name].load()
            load_s[name] = time.perf_counter() - started
            await embedders[name].embed(chunks[: max(args.batch_sizes)])  # warm-up
            log(f"{name}: loaded in {load_s[name]:.1f} s")
        orders = {"length": sorted(chunks, key=len), "cut": chunks}
        for round_ in range(args.repeat):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name, batch_size, ordered in itertools.product(
                order, args.batch_sizes, args.orders
            ):
                texts = orders[ordered]
                started = time.perf_counter()
                for start in range(0, len(texts), batch_size):  # one call per batch
                    vectors = await embedders[name].embed(texts[start : start + batch_size])
                    assert len(vectors[0]) == embedders[name].dimension
                key = (name, batch_size, ordered)
                runs.setdefault(key, []).append(time.perf_counter() - started)
                log(f"round {round_ + 1}: {name} batch {batch_size} {ordered} order: "
                    f"{len(texts) / runs[key][-1]:.1f} chunks/s")  # fmt: skip
    finally:
        for embedder in embedders.values():
            await embedder.aclose()
    results = []
    for (name, batch_size, ordered), seconds_all in runs.items():
        seconds = statistics.median(seconds_all)
        results.append({
            "provider": "hashing" if name == "hashing" else "sentence-transformers",
            "backend": name,
            "model": embedders[name].model_name,
            "device": "cpu" if name == "hashing" else args.device,
            "batch_size": batch_size,
            "order": ordered,
            "chunks": len(chunks),
            "load_s": load_s[name],
            "seconds_median": seconds,
            "seconds_all": seconds_all,
            "chunks_per_s": len(chunks) / seconds,
            "ms_per_chunk": seconds / len(chunks) * 1000,
        })  # fmt: skip
    return results


async def quality(
    backends: list[str], args: argparse.Namespace, onnx_cache: Path
) -> dict[str, Any]:
    """R@5 / MRR@10 per mode and backend on the project's retrieval evaluation."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from lexintel_core import migrate
    from lexintel_core.db import create_engine, create_session_factory
    from lexintel_core.embedded_servers import EmbeddedPostgres, free_port
    from lexintel_core.models import Base
    from tests.core import test_search_quality as evaluation

    legal_documents, legal_queries = evaluation.load_corpus()
    try:
        court_documents, court_queries = evaluation.load_court_corpus()
    except BaseException as missing:  # pytest's skip: a clone without ../shared
        log(f"court filings skipped: {missing}")
        court_documents, court_queries = [], []
    scores: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lexintel-quality-") as folder:
        postgres = EmbeddedPostgres(Path(folder) / "pg", port=free_port(), durable=False)
        postgres.start()
        try:
            postgres.create_database("quality")
            # Ranks only: snippets chosen by embedding (a model call per search) change no rank.
            settings = Settings(
                _env_file=None,
                database_url=postgres.url("quality"),
                data_dir=Path(folder),
                search_snippet_similarity=False,
            )
            await migrate.upgrade_async(settings)
            engine = create_engine(settings)
            sessions = create_session_factory(engine)
            tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
            try:
                for name in backends:
                    embedder = build(name, SHIPPED_BATCH, args, onnx_cache)
                    await embedder.load()
                    results: dict[Any, list[Any]] = {mode: [] for mode in evaluation.MODES}
                    try:
                        for documents, queries, tokens in (
                            (legal_documents, legal_queries, evaluation.CHUNK_TOKENS),
                            (court_documents, court_queries, settings.chunk_size_tokens),
                        ):
                            if not queries:
                                continue
                            done = await evaluation.evaluate(
                                sessions, embedder, settings, documents, queries,
                                chunk_tokens=tokens,
                            )  # fmt: skip
                            for mode in evaluation.MODES:
                                results[mode] += done.results[mode]
                            async with engine.begin() as connection:
                                await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
                    finally:
                        await embedder.aclose()
                    scores[name] = {
                        mode.value: {
                            "recall_at_5": evaluation.recall(results[mode]),
                            "mrr_at_10": evaluation.mrr(results[mode]),
                            "queries": len(results[mode]),
                        }
                        for mode in evaluation.MODES
                    }
                    log(f"{name}: SEMANTIC R@5 {scores[name]['SEMANTIC']['recall_at_5']:.3f}")
            finally:
                await engine.dispose()
        finally:
            postgres.stop(mode="immediate")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--orders", nargs="+", choices=("length", "cut"), default=["length", "cut"])
    parser.add_argument("--device", default="cpu", help="for sentence-transformers: cpu, cuda")
    parser.add_argument("--quality", action="store_true", help="R@5 per backend (minutes)")
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
    names: list[str] = []
    if "hashing" in args.providers:
        names.append("hashing")
    if "sentence-transformers" in args.providers:
        if semantic_extra_available():
            names += args.backends
        else:
            log("sentence-transformers is not installed: skipped")
    with tempfile.TemporaryDirectory(prefix="lexintel-onnx-") as onnx_cache:
        results = asyncio.run(throughput(names, chunks, args, Path(onnx_cache)))
        backends = [name for name in names if name != "hashing"]
        scores = asyncio.run(quality(backends, args, Path(onnx_cache))) if args.quality else {}
    threads = None
    if backends:
        import torch

        threads = torch.get_num_threads()
    # Paired by round: the load of a shared machine drifts between rounds more than between
    # two neighbouring measurements of one round.
    baseline = next(
        (
            r["seconds_all"]
            for r in results
            if (r["backend"], r["batch_size"], r["order"])
            == ("torch", SHIPPED_BATCH, "cut" if "cut" in args.orders else args.orders[0])
        ),
        None,
    )
    for r in results:
        r["x_torch"] = (
            statistics.median(b / s for b, s in zip(baseline, r["seconds_all"], strict=True))
            if baseline
            else None
        )
    print(f"\n  {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch "
          f"threads {threads}; {len(chunks)} chunks of {mean_chars:.0f} characters, median of "
          f"{args.repeat} interleaved rounds; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    head = (
        f"  {'backend':12}{'device':>7}{'batch':>7}{'order':>8}{'chunks/s':>10}{'ms/chunk':>10}"
        f"{'x torch':>9}{'load s':>8}"
    )
    print(head + "\n  " + "-" * (len(head) - 2))
    for r in results:
        ratio = f"{r['x_torch']:.2f}" if r["x_torch"] else "-"
        print(f"  {r['backend']:12}{r['device']:>7}{r['batch_size']:>7}{r['order']:>8}"
              f"{r['chunks_per_s']:>10.1f}"
              f"{r['ms_per_chunk']:>10.2f}{ratio:>9}{r['load_s']:>8.2f}")  # fmt: skip
    if scores:
        print(f"\n  {'backend':12}{'queries':>8}{'SEMANTIC R@5':>14}{'MRR@10':>8}"
              f"{'HYBRID R@5':>12}{'MRR@10':>8}{'R@5 vs torch':>14}")  # fmt: skip
        reference = scores.get("torch", {}).get("SEMANTIC", {}).get("recall_at_5")
        for name, score in scores.items():
            semantic, hybrid = score["SEMANTIC"], score["HYBRID"]
            delta = (
                f"{100 * (semantic['recall_at_5'] - reference):+.1f} pt"
                if reference is not None
                else "-"
            )
            print(f"  {name:12}{semantic['queries']:>8}{semantic['recall_at_5']:>14.3f}"
                  f"{semantic['mrr_at_10']:>8.3f}{hybrid['recall_at_5']:>12.3f}"
                  f"{hybrid['mrr_at_10']:>8.3f}{delta:>14}")  # fmt: skip
    output: dict[str, Any] = {
        "config": {**vars(args), "output": str(args.output), "cpus": os.cpu_count()},
        "chunk_size_tokens": settings.chunk_size_tokens,
        "mean_chunk_chars": mean_chars,
        "torch_threads": threads,
        "results": results,
        "quality": scores,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\n  wrote {args.output}")


if __name__ == "__main__":
    main()
