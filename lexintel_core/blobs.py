"""Content-addressed blob storage: the key of a blob is the SHA-256 hex of its bytes.

Writes are streamed (never the whole file in memory) and atomic: `PostgresBlobStore` writes
all parts in one transaction, `FilesystemBlobStore` writes a temporary file and renames it.
Both are readable from workers on other machines (a shared database or a shared volume).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.db import SessionFactory
from lexintel_core.errors import FileTooLarge, InvalidInput, NotFound
from lexintel_core.models import Blob, BlobPart
from lexintel_core.settings import Settings

_KEY = re.compile(r"[0-9a-f]{64}")


def validate_key(key: str) -> str:
    """A key is exactly 64 lowercase hex digits, so it can never name a path elsewhere."""
    if not _KEY.fullmatch(key):
        raise InvalidInput(f"invalid blob key {key[:80]!r}: expected a SHA-256 hex digest")
    return key


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    created: bool  # False when the same bytes were already stored


class BlobStore(Protocol):
    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob: ...

    def open(self, key: str) -> AsyncIterator[bytes]: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> bool: ...


async def _rechunk(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Re-cut a byte stream into pieces of exactly `size` bytes (the last may be shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class _Meter:
    """Hashes and counts the bytes going by; enforces the size limit."""

    def __init__(self, max_bytes: int | None) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes

    def feed(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise FileTooLarge(f"file is larger than the limit of {self.max_bytes} bytes")
        self.digest.update(piece)

    @property
    def key(self) -> str:
        return self.digest.hexdigest()


class PostgresBlobStore:
    """Blobs as rows of `blob_parts` (bytea), written in one transaction."""

    def __init__(self, sessions: SessionFactory, *, part_bytes: int = 1024 * 1024) -> None:
        self._sessions = sessions
        self._part_bytes = part_bytes

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        meter = _Meter(max_bytes)
        blob_id = uuid.uuid4()
        try:
            async with self._sessions.begin() as session:
                session.add(Blob(id=blob_id, key=None, size_bytes=0))
                await session.flush()
                seq = 0
                async for part in _rechunk(chunks, self._part_bytes):
                    meter.feed(part)
                    session.add(BlobPart(blob_id=blob_id, seq=seq, data=part))
                    await session.flush()
                    session.expunge_all()  # keep no written part in memory
                    seq += 1
                if await self._find(session, meter.key) is not None:
                    await session.rollback()
                    return StoredBlob(meter.key, meter.size, created=False)
                await session.execute(
                    update(Blob)
                    .where(Blob.id == blob_id)
                    .values(key=meter.key, size_bytes=meter.size)
                )
        except IntegrityError:
            # A concurrent writer stored the same bytes first; ours were rolled back.
            return StoredBlob(meter.key, meter.size, created=False)
        return StoredBlob(meter.key, meter.size, created=True)

    @staticmethod
    async def _find(session: AsyncSession, key: str) -> uuid.UUID | None:
        return await session.scalar(select(Blob.id).where(Blob.key == key))

    async def open(self, key: str) -> AsyncIterator[bytes]:
        validate_key(key)
        async with self._sessions() as session:
            blob_id = await self._find(session, key)
            if blob_id is None:
                raise NotFound(f"blob {key} does not exist")
            seq = 0
            while True:  # one part per round trip: memory stays at one part
                data = await session.scalar(
                    select(BlobPart.data).where(BlobPart.blob_id == blob_id, BlobPart.seq == seq)
                )
                if data is None:
                    return
                yield data
                seq += 1

    async def exists(self, key: str) -> bool:
        validate_key(key)
        async with self._sessions() as session:
            return await self._find(session, key) is not None

    async def delete(self, key: str) -> bool:
        validate_key(key)
        async with self._sessions.begin() as session:
            result = await session.execute(delete(Blob).where(Blob.key == key))
            return bool(result.rowcount)  # type: ignore[attr-defined]


class FilesystemBlobStore:
    """Blobs as files `<root>/ab/cd/<key>` on a volume every worker can read."""

    def __init__(self, root: Path, *, read_bytes: int = 1024 * 1024) -> None:
        self.root = root.resolve()
        self._read_bytes = read_bytes

    def path(self, key: str) -> Path:
        validate_key(key)
        path = (self.root / key[:2] / key[2:4] / key).resolve()
        if not path.is_relative_to(self.root):  # pragma: no cover - excluded by validate_key
            raise InvalidInput(f"blob key {key!r} escapes the store")
        return path

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        meter = _Meter(max_bytes)
        tmp_dir = self.root / ".tmp"
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        handle: BinaryIO = await asyncio.to_thread(tmp.open, "wb")
        try:
            try:
                async for chunk in chunks:
                    meter.feed(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(handle.flush)
                await asyncio.to_thread(os.fsync, handle.fileno())
            finally:
                await asyncio.to_thread(handle.close)
            final = self.path(meter.key)
            if await asyncio.to_thread(final.exists):
                return StoredBlob(meter.key, meter.size, created=False)
            await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(os.replace, tmp, final)
            return StoredBlob(meter.key, meter.size, created=True)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key} does not exist") from None
        try:
            while data := await asyncio.to_thread(handle.read, self._read_bytes):
                yield data
        finally:
            await asyncio.to_thread(handle.close)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).exists)

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True


def create_blob_store(settings: Settings, sessions: SessionFactory) -> BlobStore:
    if settings.blob_backend == "filesystem":
        return FilesystemBlobStore(settings.resolved_blob_dir)
    return PostgresBlobStore(sessions, part_bytes=settings.blob_chunk_bytes)
