from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core import migrate
from lexintel_core.db import create_engine
from lexintel_core.models import Base
from lexintel_core.settings import Settings
from tests.conftest import make_settings

EXPECTED_INDEXES = {
    "ix_document_chunks_embedding_hnsw": "USING hnsw (embedding vector_cosine_ops)",
    "ix_document_chunks_search_vector": "USING gin (search_vector)",
    "ix_document_chunks_case_id": "USING btree (case_id)",
}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return {row[0] for row in rows}


async def test_migrations_upgrade_an_empty_database_and_downgrade_cleanly(
    empty_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    fresh = make_settings(empty_database_url, settings.redis_url, tmp_path)
    engine = create_engine(fresh)
    try:
        assert await migrate.current_revision(engine) is None
        assert not await migrate.is_at_head(engine, fresh)

        await migrate.upgrade_async(fresh)
        assert await migrate.is_at_head(engine, fresh)
        model_tables = {table.name for table in Base.metadata.sorted_tables}
        assert model_tables <= await _tables(engine)
        async with engine.connect() as connection:
            indexes: dict[str, str] = dict(
                (await connection.execute(text("SELECT indexname, indexdef FROM pg_indexes"))).all()
            )
            column_type = await connection.scalar(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'"
                )
            )
        for name, definition in EXPECTED_INDEXES.items():
            assert definition in indexes[name]
        assert column_type == f"vector({fresh.embedding_dimension})"

        await migrate.downgrade_async(fresh, "base")
        assert await migrate.current_revision(engine) is None
        assert await _tables(engine) == {"alembic_version"}

        await migrate.upgrade_async(fresh)  # and back up again: downgrade left no debris
        assert await migrate.is_at_head(engine, fresh)
    finally:
        await engine.dispose()


async def test_embedding_dimension_comes_from_settings(
    empty_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    fresh = make_settings(empty_database_url, settings.redis_url, tmp_path).model_copy(
        update={"embedding_dimension": 768}
    )
    await migrate.upgrade_async(fresh)
    engine = create_engine(fresh)
    try:
        async with engine.connect() as connection:
            column_type = await connection.scalar(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'"
                )
            )
        assert column_type == "vector(768)"
    finally:
        await engine.dispose()


async def _chat_schema(engine: AsyncEngine) -> list[tuple[str, ...]]:
    """Columns, constraints and indexes of the chat tables, as PostgreSQL describes them."""
    queries = [
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') "
        "FROM information_schema.columns WHERE table_name LIKE 'chat%'",
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid::regclass::text LIKE 'chat%'",
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'chat%'",
    ]
    rows: list[tuple[str, ...]] = []
    async with engine.connect() as connection:
        for query in queries:
            rows += [tuple(row) for row in await connection.execute(text(query))]
    return sorted(rows)


async def test_the_unused_chat_tables_are_dropped_and_come_back_as_they_were_on_downgrade(
    empty_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    fresh = make_settings(empty_database_url, settings.redis_url, tmp_path)
    engine = create_engine(fresh)
    try:
        await migrate.upgrade_async(fresh, "0006")
        created = await _chat_schema(engine)
        assert {"chat_conversations", "chat_messages"} <= await _tables(engine)

        await migrate.upgrade_async(fresh)
        assert await _chat_schema(engine) == []

        await migrate.downgrade_async(fresh, "0006")
        assert await _chat_schema(engine) == created
    finally:
        await engine.dispose()
