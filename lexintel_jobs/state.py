"""What a worker process holds: built in arq's on_startup, closed in on_shutdown."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core.blobs import BlobStore, create_blob_store
from lexintel_core.db import SessionFactory, create_engine, create_session_factory
from lexintel_core.embeddings import Embedder, check_embedding_dimension, create_embedder
from lexintel_core.settings import Settings
from lexintel_jobs.extraction import Extractor, OcrOptions

STATE_KEY = "lexintel"


@dataclass
class WorkerState:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: ArqRedis
    blobs: BlobStore
    extractor: Extractor
    embedder: Embedder

    async def aclose(self) -> None:
        await self.extractor.aclose()
        await self.embedder.aclose()
        await self.engine.dispose()


async def build_state(settings: Settings, redis: ArqRedis) -> WorkerState:
    """Connect everything a job needs; fail fast when the embedder does not fit the schema."""
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    embedder = create_embedder(settings)
    try:
        await embedder.load()
        await check_embedding_dimension(engine, embedder)
    except BaseException:
        await embedder.aclose()
        await engine.dispose()
        raise
    extractor = Extractor(
        timeout_seconds=settings.extract_timeout_seconds,
        memory_limit_mb=settings.extract_memory_limit_mb,
        max_concurrency=settings.worker_concurrency,
        pdf_engine=pdf_engine(settings),
        ocr=ocr_options(settings),
        page_timeout_seconds=settings.extract_page_timeout_seconds,
    )
    return WorkerState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        blobs=create_blob_store(settings, sessions),
        extractor=extractor,
        embedder=embedder,
    )


def pdf_engine(settings: Settings) -> str:
    if settings.pdf_engine != "auto":
        return settings.pdf_engine
    return "pypdfium2" if importlib.util.find_spec("pypdfium2") else "pypdf"


def ocr_options(settings: Settings) -> OcrOptions:
    return OcrOptions(
        mode=settings.ocr,
        languages=settings.ocr_languages,
        dpi=settings.ocr_dpi,
        jobs=settings.ocr_jobs,
        page_timeout_seconds=settings.ocr_page_timeout_seconds,
    )


def state_of(ctx: dict[str, Any]) -> WorkerState:
    state = ctx[STATE_KEY]
    assert isinstance(state, WorkerState)
    return state
