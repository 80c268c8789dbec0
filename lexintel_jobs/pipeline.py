"""The stages of one document: extract → chunk → embed → READY.

Each stage replaces its own output in one transaction, so running it twice (at-least-once
delivery, a takeover after a crash) gives the same result. Each such transaction is fenced
by the document's lease (`run.fence`): a run that was taken over writes nothing."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update

from lexintel_core.chunking import chunk_pages
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
    """`document.process`: the whole pipeline."""
    if not await _runnable(run):
        return "already finished"
    await extract_and_chunk(run)
    return await embed_chunks(run)


async def extract_document(run: JobRun) -> str:
    """`document.extract`: extract and chunk again, then queue `document.embed`."""
    if not await _runnable(run):
        return "already finished"
    await extract_and_chunk(run, then=ProcessingStatus.QUEUED)
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


async def extract_and_chunk(run: JobRun, *, then: ProcessingStatus | None = None) -> None:
    """Extract and chunk; leave the document CHUNKING, or move it on to `then`."""
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
    async with run.state.sessions.begin() as session:
        document = await run.load(session)
        await run.fence(session)
        await session.execute(
            delete(DocumentChunk).where(DocumentChunk.document_id == run.document_id)
        )
        if chunks:
            await session.execute(
                insert(DocumentChunk),
                [
                    {
                        "document_id": document.id,
                        "case_id": document.case_id,
                        "ordinal": chunk.ordinal,
                        "text": chunk.text,
                        "search_text": chunk.search_text,
                        "page_breaks": list(chunk.page_breaks),
                        "page_start": chunk.page_start,
                        "page_end": chunk.page_end,
                        "char_start": chunk.char_start,
                        "char_end": chunk.char_end,
                        "token_count": chunk.token_count,
                    }
                    for chunk in chunks
                ],
            )
    await run.report(ProcessingStatus.CHUNKING, 100.0, f"{len(chunks)} chunks")
    if then is not None:
        await run.transition(then)


def _no_text(coverage: TextCoverage, ocr: str) -> PermanentError:
    if coverage.pages_without_text and ocr == "off":
        why = "its pages are images and OCR is off (LEXINTEL_OCR=off)"
    elif coverage.pages_ocr or coverage.pages_blank:
        why = "no words were found in its text layer or by OCR"
    else:
        why = "it has no text layer"
    return PermanentError(f"the document has no text: {why}", code=FailureCode.NO_TEXT)


async def embed_chunks(run: JobRun) -> str:
    state = run.state
    embedder = state.embedder
    await run.transition(ProcessingStatus.EMBEDDING)
    async with state.sessions() as session:
        rows = (
            await session.execute(
                select(
                    DocumentChunk.id,
                    func.coalesce(DocumentChunk.search_text, DocumentChunk.text),
                )
                .where(
                    DocumentChunk.document_id == run.document_id,
                    DocumentChunk.embedding_model.is_distinct_from(embedder.model_name),
                )
                .order_by(DocumentChunk.ordinal)
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
    await run.check_cancelled()
    if not await run.finish(ProcessingStatus.READY):
        return "already finished"
    return "ready"
