"""Chunks are written once, with their vectors; a reprocess reuses the vectors of unchanged
text (same text, same model) instead of embedding it again."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core.blobs import create_blob_store
from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import Embedder, create_embedder
from lexintel_core.jobs import JobName, ProcessDocument, enqueue
from lexintel_core.models import Document
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.state import WorkerState
from tests.jobs.conftest import Uploader, load, make_pdf

RunWorker = Callable[..., Awaitable[Worker]]
_VOCABULARY = (
    "tenant landlord premises rent deposit notice breach remedy covenant assignment "
    "sublease repair insurance indemnity default termination renewal holdover easement"
)


def _pages(count: int, seed: int = 5) -> list[str]:
    """Pages of distinct sentences (none repeats, so none is taken for boilerplate)."""
    chooser = random.Random(seed)
    return [
        "\n".join(" ".join(chooser.choices(_VOCABULARY.split(), k=9)) + "." for _ in range(40))
        for _ in range(count)
    ]


class CountingEmbedder:
    """Wraps the real embedder; records every text it is asked to embed."""

    def __init__(self, inner: Embedder, texts: list[str]) -> None:
        self.inner = inner
        self.texts = texts
        self.model_name = inner.model_name
        self.dimension = inner.dimension

    async def load(self) -> None:
        await self.inner.load()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


def counting(texts: list[str]) -> Callable[[WorkerState], None]:
    def prepare(state: WorkerState) -> None:
        state.embedder = CountingEmbedder(state.embedder, texts)

    return prepare


@pytest.fixture
async def chunk_writes(engine: AsyncEngine) -> AsyncIterator[Callable[[], Awaitable[list[str]]]]:
    """Logs each row written to document_chunks (INSERT, COPY included, or UPDATE) by any
    session; yields a function reading the log."""
    statements = [
        "CREATE TABLE test_chunk_writes (seq bigserial PRIMARY KEY, op text NOT NULL)",
        """CREATE FUNCTION test_log_chunk_write() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO test_chunk_writes (op) VALUES (TG_OP); RETURN NULL; END $$""",
        """CREATE TRIGGER test_chunk_writes AFTER INSERT OR UPDATE ON document_chunks
           FOR EACH ROW EXECUTE FUNCTION test_log_chunk_write()""",
    ]
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))

    async def read() -> list[str]:
        async with engine.connect() as connection:
            return list(await connection.scalars(text("SELECT op FROM test_chunk_writes")))

    try:
        yield read
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER test_chunk_writes ON document_chunks"))
            await connection.execute(text("DROP FUNCTION test_log_chunk_write()"))
            await connection.execute(text("DROP TABLE test_chunk_writes"))


async def _reprocess(sessions: SessionFactory, queue: ArqRedis, document: Document) -> None:
    """What reprocessing a READY document through the API does: the next generation, QUEUED
    (its chunks stay until the new run replaces them), then `document.process`."""
    async with sessions.begin() as session:
        stored = await session.get(Document, document.id)
        assert stored is not None
        stored.transition_to(ProcessingStatus.QUEUED)
        stored.generation += 1
        stored.attempts = 0
        generation = stored.generation
    await enqueue(
        queue,
        JobName.DOCUMENT_PROCESS,
        ProcessDocument(document_id=document.id, generation=generation),
    )


async def test_processing_writes_each_chunk_once_with_its_vector(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    chunk_writes: Callable[[], Awaitable[list[str]]],
) -> None:
    document = await uploader.upload(make_pdf(_pages(6)))
    await run_worker()
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY, stored.error_message
    assert len(chunks) > 3
    assert all(chunk.embedding is not None and chunk.embedding_model for chunk in chunks)
    # One INSERT per chunk and no UPDATE: no dead tuple, no second round of index entries.
    assert await chunk_writes() == ["INSERT"] * len(chunks)


async def test_a_reprocess_of_the_same_text_embeds_nothing_again(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    queue: ArqRedis,
) -> None:
    embedded: list[str] = []
    document = await uploader.upload(make_pdf(_pages(6)))
    await run_worker(prepare=counting(embedded))
    _, first = await load(sessions, document.id)
    assert sorted(embedded) == sorted({c.search_text for c in first if c.search_text})

    embedded.clear()
    await _reprocess(sessions, queue, document)
    await run_worker(prepare=counting(embedded))
    stored, second = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY, stored.error_message
    assert embedded == []
    assert {c.id for c in second}.isdisjoint({c.id for c in first})  # chunks were replaced
    assert [c.search_text for c in second] == [c.search_text for c in first]
    for before, after in zip(first, second, strict=True):
        assert after.embedding == before.embedding
        assert after.embedding_model == before.embedding_model


async def test_texts_are_embedded_in_batches_of_similar_length(
    uploader: Uploader, run_worker: RunWorker, sessions: SessionFactory, worker_settings: Settings
) -> None:
    """Chunks go to the embedder shortest first (less padding per batch), and each chunk
    still gets its own text's vector."""
    embedded: list[str] = []
    # Pages of 8 to 40 sentences: chunks of many lengths, the short ones at page ends.
    pages = [page[: len(page) * (number + 1) // 5] for number, page in enumerate(_pages(5))]
    document = await uploader.upload(make_pdf(pages))
    await run_worker(prepare=counting(embedded))
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY, stored.error_message
    lengths = [len(text_) for text_ in embedded]
    assert len(set(lengths)) > 3
    assert lengths == sorted(lengths)
    embedder = create_embedder(worker_settings)
    expected = await embedder.embed([chunk.search_text or "" for chunk in chunks])
    for chunk, vector in zip(chunks, expected, strict=True):
        assert chunk.embedding is not None
        assert list(chunk.embedding) == pytest.approx(vector, abs=1e-6)


async def test_a_changed_page_embeds_only_the_chunks_whose_text_changed(
    uploader: Uploader,
    run_worker: RunWorker,
    sessions: SessionFactory,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    embedded: list[str] = []
    pages = _pages(8)
    document = await uploader.upload(make_pdf(pages))
    await run_worker(prepare=counting(embedded))
    _, first = await load(sessions, document.id)

    # The same document with its fifth page rewritten (as if its blob were replaced).
    pages[4] = _pages(1, seed=99)[0]
    blob = await create_blob_store(settings, sessions).put(_once(make_pdf(pages)))
    async with sessions.begin() as session:
        await session.execute(
            update(Document).where(Document.id == document.id).values(blob_key=blob.key)
        )
    embedded.clear()
    await _reprocess(sessions, queue, document)
    await run_worker(prepare=counting(embedded))
    stored, second = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY, stored.error_message

    old_texts = {c.search_text for c in first}
    changed = {c.search_text for c in second} - old_texts
    assert changed
    assert set(embedded) == changed
    assert len(embedded) == len(changed)  # each changed text embedded once
    assert len(embedded) < len(second) / 2
    reused = {c.search_text: c.embedding for c in first}
    for chunk in second:
        assert chunk.embedding is not None
        if chunk.search_text in reused:
            assert chunk.embedding == reused[chunk.search_text]


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def test_a_refused_chunk_write_fails_with_its_own_error(
    uploader: Uploader,
    run_worker: RunWorker,
    worker_settings: Settings,
    sessions: SessionFactory,
    engine: AsyncEngine,
) -> None:
    """A COPY refused inside its transaction (here by a trigger) fails the try with the
    refusal, not with the error of resetting the binary codec through the aborted
    transaction; the connection is dropped rather than pooled with that codec."""
    statements = [
        """CREATE FUNCTION test_refuse_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'chunk rows refused by the test'; END $$""",
        """CREATE TRIGGER test_refuse_chunks BEFORE INSERT ON document_chunks
           FOR EACH ROW EXECUTE FUNCTION test_refuse_chunks()""",
    ]
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    try:
        document = await uploader.upload(make_pdf(_pages(2)))
        await run_worker(worker_settings.model_copy(update={"retry_delays_seconds": []}))
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER test_refuse_chunks ON document_chunks"))
            await connection.execute(text("DROP FUNCTION test_refuse_chunks()"))
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.FAILED
    assert stored.error_message is not None
    assert "chunk rows refused by the test" in stored.error_message, stored.error_message
    assert chunks == []
