"""Search at scale: synthetic chunks in the product's schema, index builds, latency and recall.

    python bench/search_scale.py [--sizes 10000 100000] [--queries 200]

Per size: a fresh database on a throwaway embedded PostgreSQL 18 + pgvector, migrated by the
real migrations; N chunks loaded by binary COPY; the GIN and HNSW indexes rebuilt (timed);
p50/p95 of SEMANTIC / KEYWORD / HYBRID through the real SearchService, unfiltered and
filtered to a case holding 1% of the chunks; HNSW recall@10 against exact search at
ef_search 40 and 100; what the 1% case returns with and without iterative scan, and the plans.
Every search statement is prepared (asyncpg), so PostgreSQL may switch to a generic plan after
five executions: the tables count those and show the service again with custom plans forced.
Prints a table per size and writes bench/results/search_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core import migrate
from lexintel_core.db import create_engine, create_session_factory
from lexintel_core.embedded_servers import EmbeddedPostgres, free_port
from lexintel_core.search import SearchMode, SearchRequest, SearchService
from lexintel_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DIM, K, PER_DOC, CASES = 384, 10, 50, 100
CLUSTERS, RANK, SPREAD, NOISE, SHARED = 64, 16, 0.2, 0.01, 0.5
MODEL = "bench-synthetic"
HNSW, GIN = "ix_document_chunks_embedding_hnsw", "ix_document_chunks_search_vector"
POSTINGS = (
    "ix_keyword_postings_lexeme",
    "ix_keyword_postings_impact",
    "ix_keyword_postings_document_id",
)
# search_vector is generated from text and created_at has a default: neither is copied.
COPY_COLUMNS = {
    "organizations": "id name",
    "cases": "id organization_id name",
    "documents": "id case_id filename content_type size_bytes sha256 blob_key status attempts",
    "document_chunks": "id document_id case_id ordinal text page_start page_end char_start "
    "char_end token_count embedding embedding_model",
}
KNN = "SELECT id FROM document_chunks ORDER BY embedding <=> $1 LIMIT 10"
PLAN_COUNTS = (
    "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) "
    "FROM pg_prepared_statements WHERE statement ~ 'keyword_postings|<=>'"
)
CUSTOM = "SET LOCAL plan_cache_mode = force_custom_plan"
NO_ITERATIVE, NO_SORT = "SET LOCAL hnsw.iterative_scan = off", "SET LOCAL enable_sort = off"
MAX_ROW_S = 30  # seconds of timed queries per table row at most: bounds a pathological plan
STARTED = time.perf_counter()
# Legal-ish words, most frequent first: chunk texts draw them Zipf-distributed, so common terms
# match most chunks and rare ones few, as in real contracts and pleadings.
_WORDS = """
agreement party shall court section contract claim plaintiff defendant notice lease tenant
landlord premises payment term breach damages liability obligation rights counsel order motion
judgment evidence witness testimony exhibit discovery deposition settlement indemnify
indemnification warranty representation covenant default remedy termination assignment consent
jurisdiction venue arbitration mediation dispute statute regulation compliance confidential
disclosure property title deed mortgage lien easement escrow closing purchase seller buyer
employer employee wages overtime discrimination harassment retaliation negligence tort duty
causation injury insurance policy coverage premium insurer subrogation fraud misrepresentation
estoppel waiver laches limitation appeal petition complaint answer counterclaim subpoena hearing
trial jury verdict sentence probation custody guardian trust estate executor probate will
beneficiary fiduciary partnership corporation shareholder director officer merger acquisition
securities dividend bankruptcy creditor debtor trustee receivership collateral guaranty
promissory note interest principal invoice delivery goods services specifications acceptance
inspection rejection force majeure severability amendment counterpart governing law successors
affidavit declaration stipulation injunction restraining temporary preliminary permanent
sanctions contempt privilege attorney client work product redaction protective produce
interrogatories admissions expert report valuation appraisal audit accounting tax penalty
patent trademark copyright infringement license royalty trade secret noncompete nonsolicitation
zoning permit variance encroachment nuisance trespass eviction rent deposit repairs habitability
sublease renewal holdover arrears mitigation foreseeability consequential liquidated punitive
restitution rescission reformation specific performance quantum meruit unjust enrichment
"""
VOCABULARY = _WORDS.split()
ZIPF = list(itertools.accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


class Step:
    """Prints a line when a long step starts and ends; `seconds` is its duration."""

    def __init__(self, label: str) -> None:
        self.label, self.seconds = label, 0.0

    def __enter__(self) -> Step:
        log(f"{self.label} …")
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.began
        log(f"{self.label}: {self.seconds:.1f}s")


def normalise(vectors: np.ndarray) -> np.ndarray:
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit.astype(np.float32)


class Mixture:
    """Gaussian clusters, each spread over a random 16-d subspace plus a little isotropic noise,
    around centres sharing a common direction. Sentence embeddings have a low intrinsic
    dimension and are anisotropic; uniform random 384-d vectors (all nearly equidistant) would
    be an unrealistically hard case for HNSW. Clusters are independent of cases, so the 1% case
    is scattered over the whole graph: the hard case for a filtered HNSW scan."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        shared = normalise(rng.standard_normal((1, DIM)))
        self.centres = normalise(SHARED * shared + normalise(rng.standard_normal((CLUSTERS, DIM))))
        self.bases = rng.standard_normal((CLUSTERS, DIM, RANK)) / np.sqrt(DIM)
        self.weights = rng.dirichlet(np.full(CLUSTERS, 2.0))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        labels = rng.choice(CLUSTERS, size=n, p=self.weights)
        out = np.empty((n, DIM), np.float64)
        for c in range(CLUSTERS):  # a loop over clusters keeps memory at O(n * DIM)
            rows = np.flatnonzero(labels == c)
            low_rank = rng.standard_normal((rows.size, RANK)) @ self.bases[c].T * SPREAD
            out[rows] = self.centres[c] + low_rank + rng.standard_normal((rows.size, DIM)) * NOISE
        return normalise(out)


def chunk_text(rng: random.Random) -> str:
    words = rng.choices(VOCABULARY, cum_weights=ZIPF, k=rng.randint(110, 190))
    # Sentences of 15 words give ts_headline fragment boundaries, as real text would.
    sentences = (" ".join(words[i : i + 15]).capitalize() for i in range(0, len(words), 15))
    return ". ".join(sentences) + "."


def corpus(n: int, mixture: Mixture) -> dict[str, Any]:
    """Records for COPY: one organization, CASES cases (the first holds 1% of the documents),
    documents of PER_DOC chunks, all READY."""
    rng = random.Random(n)  # noqa: S311 - reproducible synthetic data, not secrets
    vectors = mixture.sample(n, np.random.default_rng(n))
    org = uuid.UUID(int=rng.getrandbits(128))
    cases = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(CASES)]
    n_docs = -(-n // PER_DOC)
    small = max(1, round(n_docs / 100))
    owners = [cases[0]] * small + rng.choices(cases[1:], k=n_docs - small)
    rng.shuffle(owners)  # the small case's chunks end up scattered over the heap
    documents: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for d, case in enumerate(owners):
        doc = uuid.UUID(int=rng.getrandbits(128))
        digest = hashlib.sha256(doc.bytes).hexdigest()
        documents.append((doc, case, f"doc-{d}.pdf", "application/pdf", 1, digest, digest))
        offset = 0
        for ordinal in range(min(PER_DOC, n - d * PER_DOC)):
            body = chunk_text(rng)
            row = (uuid.UUID(int=rng.getrandbits(128)), doc, case, ordinal, body)
            page = ordinal // 3 + 1
            rows.append((*row, page, page, offset, offset + len(body), len(body.split())))
            offset += len(body)
    chunks = [(*row, vector, MODEL) for row, vector in zip(rows, vectors, strict=True)]
    in_small = np.array([row[2] == cases[0] for row in chunks])
    return {
        "org": org,
        "cases": cases,
        "documents": documents,
        "chunks": chunks,
        "ids": [row[0] for row in chunks],
        "vectors": vectors,
        "small": in_small,
    }


async def load(url: str, data: dict[str, Any]) -> dict[str, float]:
    """Binary COPY with the GIN and HNSW indexes dropped, then both rebuilt with the
    migration's own definitions: building once is far faster than maintaining them per row."""
    conn = await asyncpg.connect(url)
    try:
        await register_vector(conn)
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1)"
        definitions = dict(await conn.fetch(query, [GIN, HNSW, *POSTINGS]))
        await conn.execute(f"DROP INDEX {GIN}, {HNSW}, {', '.join(POSTINGS)}")
        rows = len(data["chunks"])
        # The chunks' COPY also writes their keyword postings (a trigger: the documents are
        # READY already) and the term statistics.
        with Step(f"COPY {rows:,} chunks (and their keyword postings)") as copy:
            records = {
                "organizations": [(data["org"], "Bench LLP")],
                "cases": [(case, data["org"], f"Case {i}") for i, case in enumerate(data["cases"])],
                "documents": [(*doc, "READY", 0) for doc in data["documents"]],
                "document_chunks": data["chunks"],
            }
            for table, columns in COPY_COLUMNS.items():
                await conn.copy_records_to_table(
                    table, records=records[table], columns=columns.split()
                )
        workers = max(1, (os.cpu_count() or 2) - 1)
        # The whole graph must fit in maintenance_work_mem, or the build slows down sharply.
        await conn.execute(
            f"SET maintenance_work_mem = '4GB'; SET max_parallel_maintenance_workers = {workers}"
        )
        with Step("build GIN index") as gin:
            await conn.execute(definitions[GIN])
        with Step(f"build HNSW index ({workers} parallel worker(s) + leader)") as hnsw:
            await conn.execute(definitions[HNSW])
        with Step("build the keyword postings indexes") as postings:
            for name in POSTINGS:
                await conn.execute(definitions[name])
        # VACUUM sets the visibility map, so that BM25 reads postings by index-only scans.
        with Step("VACUUM ANALYZE") as analyze:
            await conn.execute("VACUUM ANALYZE")
        sizes = await conn.fetchrow(
            "SELECT pg_total_relation_size('document_chunks') AS chunks_bytes, "
            "pg_total_relation_size('keyword_postings') AS postings_bytes, "
            "pg_relation_size($1) AS hnsw_bytes, pg_relation_size($2) AS gin_bytes, "
            "(SELECT count(*) FROM keyword_postings) AS postings",
            HNSW,
            GIN,
        )
    finally:
        await conn.close()
    return {
        "copy_s": copy.seconds,
        "rows_per_s": rows / copy.seconds,
        "gin_build_s": gin.seconds,
        "hnsw_build_s": hnsw.seconds,
        "postings_build_s": postings.seconds,
        "analyze_s": analyze.seconds,
        **dict(sizes),
    }


def exact_top(data: dict[str, Any], queries: np.ndarray, only: np.ndarray | None) -> list[set[Any]]:
    """Ground truth by brute force in numpy (unit vectors: cosine distance = 1 - dot product);
    200 sequential scans of a 100k-row table whose vectors are TOASTed would take minutes."""
    rows = np.flatnonzero(only) if only is not None else np.arange(len(data["ids"]))
    scores = queries.astype(np.float64) @ data["vectors"][rows].T.astype(np.float64)
    top = np.argpartition(-scores, K, axis=1)[:, :K]  # the top K, in no particular order
    return [{data["ids"][rows[j]] for j in line} for line in top]


async def top_ids(conn: asyncpg.Connection, queries: np.ndarray, setting: str) -> list[set[Any]]:
    found = []
    for vector in queries:
        async with conn.transaction():
            await conn.execute(setting)
            found.append({row["id"] for row in await conn.fetch(KNN, vector)})
    return found


def recall(found: Sequence[set[Any]], exact: Sequence[set[Any]]) -> float:
    return statistics.fmean(len(f & e) / len(e) for f, e in zip(found, exact, strict=False))


def access(plan: str) -> str:
    """How a plan reads document_chunks to rank: which of its indexes, and/or a Seq Scan."""
    used = list(dict.fromkeys(re.findall(r"\bix_(?:document_chunks|keyword)_(\w+)", plan)))
    return "+".join(used + ["Seq Scan"] * ("Seq Scan on document_chunks" in plan)) or "-"


def _random_vector(seed: str) -> list[float]:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
    vector: list[float] = normalise(rng.standard_normal((1, DIM)))[0].tolist()
    return vector


class QueryEmbedder:
    """Satisfies lexintel_core.embeddings.Embedder: each query text has a precomputed vector."""

    model_name, dimension = MODEL, DIM

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    async def load(self) -> None:
        return None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # Snippet sentences get random vectors: their model cost is not the database's.
        return [self.vectors.get(t) or _random_vector(t) for t in texts]

    async def aclose(self) -> None:
        return None


class TunedService(SearchService):
    """The service's own statement under extra settings, to show what they change."""

    def __init__(self, runner: Runner, extra: Sequence[str]) -> None:
        super().__init__(runner.sessions, runner.embedder, runner.settings)
        self.extra = extra

    async def _tune(self, session: AsyncSession) -> None:
        await super()._tune(session)
        for statement in self.extra:
            await session.execute(text(statement))


class Runner:
    """Runs requests through the real SearchService and collects what the tables show."""

    def __init__(self, url: str, texts: dict[str, list[float]], raw: asyncpg.Connection) -> None:
        self.settings = Settings(database_url=url, embedding_dimension=DIM, _env_file=None)
        self.engine = create_engine(self.settings)
        self.sessions = create_session_factory(self.engine)
        self.embedder, self.raw, self.sql = QueryEmbedder(texts), raw, ""
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._capture)

    def _capture(self, *args: Any) -> None:
        sql = args[2]
        if ("keyword_postings" in sql or "<=>" in sql) and not sql.startswith("EXPLAIN"):
            self.sql = sql  # a ranking statement, as sent to asyncpg

    async def plan_counts(self) -> tuple[int, int]:
        """Generic / custom plans of the search statements prepared on the pooled connection
        (runs are sequential, so the pool only ever holds one)."""
        async with self.sessions() as session:
            row = (await session.execute(text(PLAN_COUNTS))).one()
        return int(row[0]), int(row[1])

    async def generic_plan(self) -> str:
        """The plan PostgreSQL reuses once it stops planning the statement per execution."""
        params = max((int(n) for n in re.findall(r"\$(\d+)", self.sql)), default=0)
        if not params:
            return f"? (no statement captured: {self.sql[:60]!r})"
        async with self.raw.transaction():
            await self.raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await self.raw.execute(f"PREPARE generic AS {self.sql}")
            rows = await self.raw.fetch(f"EXPLAIN EXECUTE generic({', '.join(['NULL'] * params)})")
            await self.raw.execute("DEALLOCATE generic")
        return "\n".join(row[0] for row in rows)

    async def measure(self, requests: list[SearchRequest], *extra: str) -> dict[str, Any]:
        service = TunedService(self, extra)
        # The warm-up also spends the five custom plans after which PostgreSQL may switch a
        # prepared statement (asyncpg prepares every one) to a generic plan.
        for request in requests[:10]:
            await service.search(request)
        generic, custom = await self.plan_counts()
        latencies, ids, deadline = [], [], time.perf_counter() + MAX_ROW_S
        for request in requests:
            if time.perf_counter() > deadline:
                break
            began = time.perf_counter()
            hits = await service.search(request)
            latencies.append((time.perf_counter() - began) * 1000)
            ids.append({hit.chunk_id for hit in hits})
        generic_after, custom_after = await self.plan_counts()
        counts = [len(found) for found in ids]
        row = {
            "queries": len(latencies),
            "p50_ms": statistics.median(latencies),
            "p95_ms": statistics.quantiles(latencies, n=20)[18],
            "results_mean": statistics.fmean(counts),
            "results_min": min(counts),
            "generic_plans": generic_after - generic,
            "custom_plans": custom_after - custom,
            "plan": access(await service.explain(requests[0])),
            "ids": ids,
        }
        if row["generic_plans"]:
            row["generic_plan"] = access(await self.generic_plan())
        return row


async def search_figures(url: str, data: dict[str, Any], queries: int) -> dict[str, Any]:
    rng = random.Random(queries)  # noqa: S311 - reproducible synthetic data
    vectors = Mixture(seed=1).sample(queries, np.random.default_rng([7, queries]))
    texts: dict[str, list[float]] = {}
    while len(texts) < queries:  # unique texts: the embedder looks vectors up by text
        texts.setdefault(" ".join(rng.sample(VOCABULARY, 2)), vectors[len(texts)].tolist())
    org, small = data["org"], data["cases"][0]
    exact, exact_small = exact_top(data, vectors, None), exact_top(data, vectors, data["small"])
    raw = await asyncpg.connect(url.replace("+asyncpg", ""))
    await register_vector(raw)
    runner = Runner(url, texts, raw)
    try:
        with Step("HNSW top-10 at ef_search 40 and 100, exact check"):
            figures: dict[str, Any] = {}
            for ef in (40, 100):
                found = await top_ids(raw, vectors, f"SET LOCAL hnsw.ef_search = {ef}")
                figures[f"recall_at_10_ef{ef}"] = recall(found, exact)
                # Recall is not spread evenly: a query can miss its cluster entirely.
                lost = sum(len(f & e) < K // 2 for f, e in zip(found, exact, strict=True))
                figures[f"queries_below_half_ef{ef}"] = lost
            # numpy's ground truth against PostgreSQL's own exact answer (no index) on a sample
            check = await top_ids(raw, vectors[:5], "SET LOCAL enable_indexscan = off")
            figures["exact_check"] = f"{recall(check, exact):.3f} on 5 queries"
        tables: dict[str, dict[str, dict[str, Any]]] = {}
        figures["tables"] = tables
        settings: list[tuple[str, list[str]]] = [
            ("as shipped", []),
            ("with plan_cache_mode = force_custom_plan", [CUSTOM]),
        ]
        for title, extra in settings:
            rows = tables[f"SearchService {title}"] = {}
            for mode, case in itertools.product(SearchMode, (None, small)):
                name = f"{mode.value}{', 1% case' if case else ''}"
                with Step(f"{name} ({title})"):
                    requests = [SearchRequest(q, org, mode, case_id=case, limit=K) for q in texts]
                    row = rows[name] = await runner.measure(requests, *extra)
                ids = row.pop("ids")
                if mode is SearchMode.SEMANTIC:
                    row["recall_at_10"] = recall(ids, exact_small if case else exact)
        # enable_sort=off makes every plan that sorts by distance cost more, so the planner takes
        # the HNSW scan even where the case_id B-tree + exact sort would win.
        variants = {
            "iterative relaxed_order, planner's choice": [],
            "iterative off, planner's choice": [NO_ITERATIVE],
            "iterative relaxed_order, HNSW forced": [NO_SORT],
            "iterative off, HNSW forced": [NO_SORT, NO_ITERATIVE],
        }
        rows = tables["1% case, SEMANTIC, custom plans"] = {}
        requests = [SearchRequest(q, org, SearchMode.SEMANTIC, case_id=small) for q in texts]
        for name, extra in variants.items():
            with Step(f"1% case, SEMANTIC: {name}"):
                rows[name] = await runner.measure(requests, CUSTOM, *extra)
            rows[name]["recall_at_10"] = recall(rows[name].pop("ids"), exact_small)
    finally:
        await raw.close()
        await runner.engine.dispose()
    return figures


def report(n: int, load: dict[str, float], figures: dict[str, Any]) -> None:
    print(f"\n== {n:,} chunks, {CASES} cases, the small case holds 1% ==")
    mib = 1024 * 1024
    print(
        f"load: binary COPY {load['copy_s']:.1f}s = {load['rows_per_s']:,.0f} rows/s (indexes "
        f"dropped; with {load['postings']:,} keyword postings) | GIN build "
        f"{load['gin_build_s']:.1f}s | HNSW build {load['hnsw_build_s']:.1f}s (m=16, "
        f"ef_construction=64) | postings indexes {load['postings_build_s']:.1f}s | VACUUM "
        f"ANALYZE {load['analyze_s']:.1f}s"
    )
    print(
        f"size: chunks {load['chunks_bytes'] / mib:,.0f} MiB (HNSW {load['hnsw_bytes'] / mib:,.0f}"
        f" MiB, GIN {load['gin_bytes'] / mib:,.0f} MiB) | keyword postings with their indexes "
        f"{load['postings_bytes'] / mib:,.0f} MiB"
    )
    print(
        "HNSW recall@10 vs exact, unfiltered: "
        + ", ".join(
            f"ef_search {ef} = {figures[f'recall_at_10_ef{ef}']:.3f} "
            f"({figures[f'queries_below_half_ef{ef}']} queries below 0.5)"
            for ef in (40, 100)
        )
        + f" | numpy exact vs SQL exact: {figures['exact_check']}"
    )
    for title, rows in figures["tables"].items():
        print(
            f"\n{title:42} {'p50 ms':>7} {'p95 ms':>7} {'results':>9} {'recall':>6} "
            f"{'generic':>8}  plan (custom | generic)"
        )
        for name, row in rows.items():
            score = f"{row['recall_at_10']:.3f}" if "recall_at_10" in row else ""
            results = f"{row['results_mean']:.1f}/{row['results_min']}"
            generic = f"{row['generic_plans']}/{row['queries']}"
            plan = row["plan"] + (f" | {row['generic_plan']}" if "generic_plan" in row else "")
            print(
                f"  {name:40} {row['p50_ms']:7.1f} {row['p95_ms']:7.1f} {results:>9} "
                f"{score:>6} {generic:>8}  {plan}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    out = ROOT / "bench/results/search_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lexintel-bench-", ignore_cleanup_errors=True) as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", port=free_port(), durable=False)
        try:
            with Step("start PostgreSQL"):
                postgres.start()
                # The default 128 MB holds neither the 100k table nor its HNSW index; a search
                # server would give shared_buffers a good share of its memory.
                postgres.psql("ALTER SYSTEM SET shared_buffers = '2GB'")
                postgres.psql("ALTER SYSTEM SET max_wal_size = '8GB'")
                postgres.stop()
                postgres.start()
            mixture = Mixture(seed=1)
            for n in args.sizes:
                name = f"bench_{n}"
                postgres.create_database(name)
                settings = Settings(
                    database_url=postgres.url(name), embedding_dimension=DIM, _env_file=None
                )
                migrate.upgrade(settings)
                with Step(f"generate {n:,} chunks") as generate:
                    data = corpus(n, mixture)
                raw_url = settings.database_url.replace("+asyncpg", "")
                load_figures = asyncio.run(load(raw_url, data))
                load_figures["generate_s"] = generate.seconds
                figures = asyncio.run(search_figures(settings.database_url, data, args.queries))
                results[str(n)] = {"load": load_figures, **figures}
                report(n, load_figures, figures)
                out.write_text(json.dumps(results, indent=2) + "\n")
                postgres.psql(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            postgres.stop(mode="immediate")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the server is stopped and the directory gone by now
        raise SystemExit(130) from None
