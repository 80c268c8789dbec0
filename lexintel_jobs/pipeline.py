"""The stages of one document: extract → chunk → embed → READY.

Each stage replaces its own output in one transaction, so running it twice (at-least-once
delivery, a takeover after a crash) gives the same result. Each such transaction is fenced
by the document's lease (`run.fence`): a run that was taken over writes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from pgvector import Vector
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lexintel_core.chunking import Chunk, chunk_pages
from lexintel_core.coverage import TextCoverage
from lexintel_core.errors import FailureCode, PermanentError
from lexintel_core.jobs import EmbedDocument, JobName, enqueue
from lexintel_core.models import DocumentChunk
from lexintel_core.status import ProcessingStatus
from lexintel_jobs import metrics
from lexintel_jobs.job_run import JobRun


async def _runnable(run: JobRun) -> bool:
    """False when the document is already terminal: a duplicate delivery of finished work
    (whose end is announced again if the run that finished it could not)."""
    async with run.state.sessions() as session:
        document = await run.load(session, lock=False)
    if not document.status.is_terminal:  # queued, or taken over mid-way
        return True
    await run.announce_end(document)
    return False


async def process_document(run: JobRun) -> str:
    """`document.process`: the whole pipeline. Each chunk is written once, with its vector."""
    if not await _runnable(run):
        return "already finished"
    chunks = await extract_and_chunk(run)
    await run.transition(ProcessingStatus.EMBEDDING)
    vectors = await _embed_new(run, chunks)
    await write_chunks(run, chunks, vectors)
    return await _ready(run)


async def extract_document(run: JobRun) -> str:
    """`document.extract`: extract and chunk again, then queue `document.embed` (chunks whose
    text is unchanged keep their vectors: it embeds the others)."""
    if not await _runnable(run):
        return "already finished"
    chunks = await extract_and_chunk(run)
    await write_chunks(run, chunks, await _reusable_vectors(run))
    await run.transition(ProcessingStatus.QUEUED)
    await run.release_lease()  # so that the embed job need not wait for it to expire
    await enqueue(
        run.state.redis,
        JobName.DOCUMENT_EMBED,
        EmbedDocument(document_id=run.document_id, generation=run.generation),
    )
    return "extracted"


async def embed_document(run: JobRun) -> str:
    """`document.embed`: embed the document's chunks that lack a vector of the current model."""
    if not await _runnable(run):
        return "already finished"
    return await embed_chunks(run)


async def _download(run: JobRun, blob_key: str, path: Path) -> None:
    with path.open("wb") as handle:
        async for piece in run.state.blobs.open(blob_key):
            await asyncio.to_thread(handle.write, piece)


async def extract_and_chunk(run: JobRun) -> list[Chunk]:
    """Extract and chunk, leaving the document CHUNKING; nothing is written yet."""
    settings = run.state.settings
    document = await run.transition(ProcessingStatus.EXTRACTING, attempts=run.job_try)

    async def on_page(done: int, total: int, note: str) -> None:
        await run.check_cancelled()
        await run.report(ProcessingStatus.EXTRACTING, 100.0 * done / max(total, 1), note)

    await run.check_cancelled()
    with tempfile.TemporaryDirectory(prefix="lexintel-") as tmp:
        path = Path(tmp) / "document"
        await _download(run, document.blob_key, path)
        extracted = await run.state.extractor.extract(path, on_page)
    pages = extracted.pages
    metrics.PAGES_EXTRACTED.labels(str(run.name)).inc(len(pages))
    if not any(page.text.strip() for page in pages):
        raise _no_text(extracted.coverage, settings.ocr)

    await run.transition(
        ProcessingStatus.CHUNKING,
        page_count=len(pages),
        content_type=extracted.content_type,
        text_coverage=extracted.coverage.model_dump(mode="json"),
    )
    chunks = await asyncio.to_thread(
        chunk_pages,
        pages,
        size_tokens=settings.chunk_size_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
    )
    await run.check_cancelled()
    await run.report(ProcessingStatus.CHUNKING, 100.0, f"{len(chunks)} chunks")
    return chunks


def _no_text(coverage: TextCoverage, ocr: str) -> PermanentError:
    if coverage.pages_without_text and ocr == "off":
        why = "its pages are images and OCR is off (LEXINTEL_OCR=off)"
    elif coverage.pages_ocr or coverage.pages_blank:
        why = "no words were found in its text layer or by OCR"
    else:
        why = "it has no text layer"
    return PermanentError(f"the document has no text: {why}", code=FailureCode.NO_TEXT)


# A chunk's vector, encoded as pgvector's binary format, by the text that was embedded; None:
# a blank text, nothing to embed (SEMANTIC never returns such a chunk, KEYWORD neither: its
# search_text has no words). Reuse is keyed by that text under the current model.
Vectors = dict[str, bytes | None]


async def _reusable_vectors(run: JobRun) -> Vectors:
    """The vectors of the current model that the document's chunks hold now (from its last
    run, before this run replaces them), by the text they embed."""
    model = run.state.embedder.model_name
    async with run.state.sessions() as session:
        rows = await session.execute(
            select(
                func.coalesce(DocumentChunk.search_text, DocumentChunk.text),
                DocumentChunk.embedding,
            ).where(
                DocumentChunk.document_id == run.document_id,
                DocumentChunk.embedding_model == model,
                DocumentChunk.embedding.is_not(None),
            )
        )
        return {text: Vector(list(embedding)).to_binary() for text, embedding in rows}


async def _embed_new(run: JobRun, chunks: Sequence[Chunk]) -> Vectors:
    """A vector for each chunk's text: reused where the document already had one for the
    same text and model, embedded in batches otherwise (each distinct text once)."""
    state = run.state
    vectors = await _reusable_vectors(run)
    todo: list[str] = []
    for chunk in chunks:
        if chunk.search_text not in vectors:
            if chunk.search_text.strip():
                todo.append(chunk.search_text)
            vectors[chunk.search_text] = None  # also marks a text seen twice
    # Texts of about the same length share a batch, so little of it is padding: about 1.2x
    # the chunks/s of MiniLM on the CPU (docs/BENCHMARKS.md, embedding backends).
    todo.sort(key=len)
    batch_size = state.settings.embedding_batch_size
    for start in range(0, len(todo), batch_size):
        await run.check_cancelled()
        batch = todo[start : start + batch_size]
        embedded = await state.embedder.embed(batch)
        for text, vector in zip(batch, embedded, strict=True):
            vectors[text] = Vector(vector).to_binary()
        # No write until all are embedded: confirm the lease here, so that a run that was
        # taken over stops now and publishes no more progress.
        await run.confirm_lease()
        metrics.CHUNKS_EMBEDDED.labels(str(run.name)).inc(len(batch))
        done = start + len(batch)
        await run.report(
            ProcessingStatus.EMBEDDING, 100.0 * done / len(todo), f"{done} of {len(todo)} chunks"
        )
    return vectors


_CHUNK_COLUMNS = (
    "id",
    "document_id",
    "case_id",
    "ordinal",
    "text",
    "search_text",
    "page_breaks",
    "page_start",
    "page_end",
    "char_start",
    "char_end",
    "token_count",
    "embedding",
    "embedding_model",
)


async def write_chunks(run: JobRun, chunks: Sequence[Chunk], vectors: Vectors) -> None:
    """Replace the document's chunks with `chunks` in one fenced transaction. A chunk whose
    text is in `vectors` is written with that vector (or none, for a blank text) and the
    current model; any other without either, for `document.embed` to fill in.

    Rows go through asyncpg's binary COPY (vectors in pgvector's binary format): each row is
    written once, with its vector, so no UPDATE leaves a dead tuple and re-indexes it."""
    model = run.state.embedder.model_name
    async with run.state.sessions.begin() as session:
        document = await run.load(session)
        await run.fence(session)
        await session.execute(
            delete(DocumentChunk).where(DocumentChunk.document_id == run.document_id)
        )
        if not chunks:
            return
        records = [
            (
                uuid.uuid4(),
                document.id,
                document.case_id,
                chunk.ordinal,
                chunk.text,
                chunk.search_text,
                list(chunk.page_breaks),
                chunk.page_start,
                chunk.page_end,
                chunk.char_start,
                chunk.char_end,
                chunk.token_count,
                vectors.get(chunk.search_text),
                model if chunk.search_text in vectors else None,
            )
            for chunk in chunks
        ]
        async with _binary_vectors(await session.connection()) as driver:
            await driver.copy_records_to_table(
                DocumentChunk.__tablename__, records=records, columns=_CHUNK_COLUMNS
            )


@contextlib.asynccontextmanager
async def _binary_vectors(connection: AsyncConnection) -> AsyncIterator[Any]:
    """The connection's asyncpg driver with pgvector's `vector` type sent as binary
    (pre-encoded bytes), for as long as the block runs: the rest of the code binds vectors
    through SQLAlchemy's pgvector type, as text, on the same pooled connections.

    If the block fails (or is cancelled), its transaction is aborted and the codec cannot be
    reset through it: the connection is invalidated instead (closed, never back in the pool),
    and the block's own error propagates, not the reset's."""
    driver: Any = (await connection.get_raw_connection()).driver_connection
    await driver.set_type_codec(
        "vector",
        schema="public",
        encoder=bytes,
        decoder=Vector.from_binary,
        format="binary",
    )
    try:
        yield driver
        await driver.reset_type_codec("vector", schema="public")
    except BaseException:
        await connection.invalidate()
        raise


async def _ready(run: JobRun) -> str:
    await run.check_cancelled()
    if not await run.finish(ProcessingStatus.READY):
        return "already finished"
    return "ready"


async def embed_chunks(run: JobRun) -> str:
    """Embed the chunks that lack a vector of the current model (a new model, or chunks
    written by `document.extract`), updating each: the path for re-embedding, not the
    pipeline's normal one."""
    state = run.state
    embedder = state.embedder
    await run.transition(ProcessingStatus.EMBEDDING)
    chunk_text = func.coalesce(DocumentChunk.search_text, DocumentChunk.text)
    async with state.sessions() as session:
        rows = (
            await session.execute(
                select(DocumentChunk.id, chunk_text)
                .where(
                    DocumentChunk.document_id == run.document_id,
                    DocumentChunk.embedding_model.is_distinct_from(embedder.model_name),
                )
                # Batches of texts of about the same length (as in `_embed_new`).
                .order_by(func.length(chunk_text), DocumentChunk.ordinal)
            )
        ).all()
    batch_size = state.settings.embedding_batch_size
    for start in range(0, len(rows), batch_size):
        await run.check_cancelled()
        batch = rows[start : start + batch_size]
        # A chunk that is all boilerplate has nothing to embed: no vector, so SEMANTIC
        # never returns it (KEYWORD neither: its search_text has no words).
        texts = [text for _, text in batch if text.strip()]
        vectors = iter(await embedder.embed(texts) if texts else [])
        async with state.sessions.begin() as session:
            await run.fence(session)
            await session.execute(
                update(DocumentChunk),
                [
                    {
                        "id": chunk_id,
                        "embedding": next(vectors) if text.strip() else None,
                        "embedding_model": embedder.model_name,
                    }
                    for chunk_id, text in batch
                ],
            )
        metrics.CHUNKS_EMBEDDED.labels(str(run.name)).inc(len(batch))
        done = start + len(batch)
        await run.report(
            ProcessingStatus.EMBEDDING, 100.0 * done / len(rows), f"{done} of {len(rows)} chunks"
        )
    return await _ready(run)
