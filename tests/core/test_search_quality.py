"""Retrieval quality of the search service on a legal corpus written for the purpose.

tests/fixtures/legal_corpus.json holds 25 documents (leases, NDAs, employment papers, court
orders, a settlement, a loan, a power of attorney, letters, ...) and over 100 queries, each
with one answer: the chunk of the answer document whose page range covers the answer page
and whose text contains the query's `answer_phrase`. Queries are `exact` (they share their
key words with the answer) or `paraphrase` (they share few or none); some are citations.

One test indexes the corpus with the real MiniLM model (96-token chunks, so a page has
several and the answer chunk must be told apart from its neighbours), runs every query in
every mode with limit 5, prints recall@5 and MRR per mode in the terminal summary, and checks
what the modes are for: HYBRID finds at least as much as either list alone, every mode finds
exact queries, and SEMANTIC finds paraphrases that KEYWORD cannot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import Embedder, create_embedder
from lexintel_core.search import SearchHit, SearchMode, SearchRequest, SearchService
from lexintel_core.settings import Settings
from tests import factories
from tests.core import search_report

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "legal_corpus.json"
# Smaller than the 224-token default: about three chunks a page, so finding the right page
# is not enough, the answer chunk has to outrank its neighbours.
CHUNK_TOKENS = 96
LIMIT = 5
MODES = (SearchMode.SEMANTIC, SearchMode.KEYWORD, SearchMode.HYBRID)


@dataclass(frozen=True)
class CorpusDocument:
    filename: str
    pages: list[str]


@dataclass(frozen=True)
class Query:
    id: str
    kind: str  # "exact" or "paraphrase"
    citation: bool
    query: str
    filename: str
    page: int
    answer_phrase: str


def load_corpus(path: Path = CORPUS) -> tuple[list[CorpusDocument], list[Query]]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    documents = [
        CorpusDocument(str(item["filename"]), [str(page) for page in item["pages"]])
        for item in data["documents"]
    ]
    queries = [
        Query(
            id=str(item["id"]),
            kind=str(item["kind"]),
            citation=bool(item["citation"]),
            query=str(item["query"]),
            filename=str(item["filename"]),
            page=int(item["page"]),
            answer_phrase=str(item["answer_phrase"]),
        )
        for item in data["queries"]
    ]
    return documents, queries


def answers(query: Query, filename: str, page_start: int, page_end: int, text: str) -> bool:
    """Whether a chunk answers `query`: its document, a page range covering the answer page,
    and the answer phrase in its text."""
    return (
        filename == query.filename
        and page_start <= query.page <= page_end
        and query.answer_phrase in text
    )


def answer_rank(query: Query, hits: Sequence[SearchHit]) -> int | None:
    """1-based rank of the first hit that answers `query`, None when none does."""
    for rank, hit in enumerate(hits, start=1):
        if answers(query, hit.filename, hit.page_start, hit.page_end, hit.text):
            return rank
    return None


def page_rank(query: Query, hits: Sequence[SearchHit]) -> int | None:
    """1-based rank of the first hit from the answer page (any chunk of it)."""
    for rank, hit in enumerate(hits, start=1):
        if hit.filename == query.filename and hit.page_start <= query.page <= hit.page_end:
            return rank
    return None


@dataclass(frozen=True)
class Result:
    query: Query
    rank: int | None  # of the answer chunk
    page_rank: int | None  # of any chunk of the answer page
    top: SearchHit | None


def recall(results: Sequence[Result]) -> float:
    return sum(r.rank is not None for r in results) / len(results) if results else 0.0


def mrr(results: Sequence[Result]) -> float:
    return sum(1 / r.rank for r in results if r.rank is not None) / len(results) if results else 0.0


def page_recall(results: Sequence[Result]) -> float:
    return sum(r.page_rank is not None for r in results) / len(results) if results else 0.0


def subsets(results: Sequence[Result]) -> dict[str, list[Result]]:
    return {
        "all": list(results),
        "exact": [r for r in results if r.query.kind == "exact"],
        "paraphrase": [r for r in results if r.query.kind == "paraphrase"],
        "citation": [r for r in results if r.query.citation],
    }


@dataclass(frozen=True)
class IndexedChunk:
    filename: str
    page_start: int
    page_end: int
    text: str


@dataclass
class Evaluation:
    chunks: list[IndexedChunk]
    results: dict[SearchMode, list[Result]]
    index_seconds: float
    search_seconds: float

    def by_id(self, mode: SearchMode, query_id: str) -> Result:
        [result] = [r for r in self.results[mode] if r.query.id == query_id]
        return result


async def evaluate(
    sessions: SessionFactory,
    embedder: Embedder,
    settings: Settings,
    documents: Sequence[CorpusDocument],
    queries: Sequence[Query],
    *,
    chunk_tokens: int = CHUNK_TOKENS,
) -> Evaluation:
    """Index `documents` in one case of one organization, then run every query in every mode."""
    started = time.monotonic()
    chunks: list[IndexedChunk] = []
    async with sessions.begin() as session:
        organization = await factories.organization(session, "Quality LLP")
        case = await factories.case(session, organization, "Retrieval evaluation")
        for document in documents:
            _, rows = await factories.indexed_document(
                session, embedder, case, document.filename, document.pages, size_tokens=chunk_tokens
            )
            chunks += [
                IndexedChunk(document.filename, c.page_start, c.page_end, c.text) for c in rows
            ]
    indexed = time.monotonic()
    service = SearchService(sessions, embedder, settings)
    results: dict[SearchMode, list[Result]] = {}
    for mode in MODES:
        results[mode] = []
        for query in queries:
            hits = await service.search(
                SearchRequest(
                    query=query.query,
                    organization_id=organization.id,
                    case_id=case.id,
                    mode=mode,
                    limit=LIMIT,
                )
            )
            results[mode].append(
                Result(
                    query, answer_rank(query, hits), page_rank(query, hits), next(iter(hits), None)
                )
            )
    return Evaluation(chunks, results, indexed - started, time.monotonic() - indexed)


def report(evaluation: Evaluation, documents: Sequence[CorpusDocument], model: str) -> list[str]:
    """The table for the terminal summary: recall@5 and MRR per mode, overall and by kind."""
    sample = subsets(evaluation.results[MODES[0]])
    columns = ["all", "exact", "paraphrase", "citation"]
    header = f"{'mode':<9}" + "".join(
        f" | {f'{name} ({len(sample[name])})':<17}" for name in columns
    )
    lines = [
        f"{len(documents)} documents, {sum(len(d.pages) for d in documents)} pages, "
        f"{len(evaluation.chunks)} chunks of <= {CHUNK_TOKENS} tokens, "
        f"{len(sample['all'])} queries, embedder {model}, top {LIMIT}",
        f"{'':<9}" + " | R@5    MRR       " * len(columns) + " | page R@5",
        header,
    ]
    for mode in MODES:
        groups = subsets(evaluation.results[mode])
        cells = "".join(f" | {recall(groups[n]):.3f}  {mrr(groups[n]):.3f}    " for n in columns)
        lines.append(f"{mode.value:<9}{cells} | {page_recall(groups['all']):.3f}")
    for mode in MODES:
        missed = [r.query.id for r in evaluation.results[mode] if r.rank is None]
        lines.append(f"missed by {mode.value} ({len(missed)}): {' '.join(missed) or '-'}")
    lines.append(
        f"indexing {evaluation.index_seconds:.1f} s, "
        f"{len(sample['all']) * len(MODES)} searches {evaluation.search_seconds:.1f} s"
    )
    return lines


def test_the_corpus_is_well_formed() -> None:
    documents, queries = load_corpus()
    filenames = [document.filename for document in documents]
    assert len(documents) >= 20
    assert len(set(filenames)) == len(filenames)
    assert len(queries) >= 40
    assert len({query.id for query in queries}) == len(queries)
    assert sum(query.kind == "paraphrase" for query in queries) >= 16
    assert {query.kind for query in queries} == {"exact", "paraphrase"}
    assert sum(query.citation for query in queries) >= 3
    pages = {
        (d.filename, number): text for d in documents for number, text in enumerate(d.pages, 1)
    }
    for document in documents:
        assert 2 <= len(document.pages) <= 5, document.filename
        for text in document.pages:
            assert 100 <= len(text.split()) <= 300, document.filename
    for query in queries:
        assert query.answer_phrase in pages[query.filename, query.page], query.id


async def test_retrieval_quality_per_mode(sessions: SessionFactory, settings: Settings) -> None:
    documents, queries = load_corpus()
    embedder = create_embedder(
        settings.model_copy(update={"embedding_provider": "sentence-transformers"})
    )
    try:
        await embedder.load()
        evaluation = await evaluate(sessions, embedder, settings, documents, queries)
    finally:
        await embedder.aclose()
    lines = report(evaluation, documents, embedder.model_name)
    search_report.LINES.extend(lines)
    print("\n".join(lines))  # for -s and for the captured output of a failure

    # Every answer is one chunk: the phrase did not fall across a chunk boundary.
    for query in queries:
        assert any(
            answers(query, c.filename, c.page_start, c.page_end, c.text) for c in evaluation.chunks
        ), query.id

    overall = {mode: subsets(evaluation.results[mode]) for mode in MODES}

    def r5(mode: SearchMode, subset: str = "all") -> float:
        return recall(overall[mode][subset])

    # The requirement: fusion loses nothing against either list alone.
    assert r5(SearchMode.HYBRID) >= r5(SearchMode.KEYWORD)
    assert r5(SearchMode.HYBRID) >= r5(SearchMode.SEMANTIC)
    # Every mode finds what is asked in the document's own words.
    assert r5(SearchMode.KEYWORD, "exact") >= 0.8
    assert r5(SearchMode.SEMANTIC, "exact") >= 0.8
    assert r5(SearchMode.HYBRID, "exact") >= 0.9
    assert r5(SearchMode.KEYWORD, "citation") >= 0.8
    # Meaning, not words: SEMANTIC (and so HYBRID) finds paraphrases that KEYWORD cannot.
    assert r5(SearchMode.SEMANTIC, "paraphrase") >= r5(SearchMode.KEYWORD, "paraphrase") + 0.3
    assert r5(SearchMode.HYBRID, "paraphrase") >= r5(SearchMode.KEYWORD, "paraphrase") + 0.3

    # Spot checks: the expected chunk comes first in HYBRID.
    for query_id in SPOT_CHECKS:
        result = evaluation.by_id(SearchMode.HYBRID, query_id)
        assert result.rank == 1, (query_id, result.query.query, result.top)


SPOT_CHECKS: tuple[str, ...] = ()
