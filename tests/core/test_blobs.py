from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from lexintel_core.blobs import (
    BlobStore,
    FilesystemBlobStore,
    PostgresBlobStore,
    create_blob_store,
    validate_key,
)
from lexintel_core.db import SessionFactory
from lexintel_core.errors import ErrorCode, FileTooLarge, InvalidInput, NotFound
from lexintel_core.settings import Settings

MiB = 1024 * 1024


async def stream(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def generated(total: int, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    """`total` pseudo-random-ish bytes, produced piece by piece (never all at once)."""
    for index in range(0, total, piece):
        seed = hashlib.sha256(str(index).encode()).digest()
        yield (seed * (piece // len(seed) + 1))[: min(piece, total - index)]


async def read_all(store: BlobStore, key: str) -> bytes:
    return b"".join([part async for part in store.open(key)])


@pytest.fixture(params=["postgres", "filesystem"])
def store(request: pytest.FixtureRequest, sessions: SessionFactory, tmp_path: Path) -> BlobStore:
    if request.param == "postgres":
        return PostgresBlobStore(sessions, part_bytes=256 * 1024)
    return FilesystemBlobStore(tmp_path / "blobs", read_bytes=256 * 1024)


async def test_round_trip_is_content_addressed_and_deduplicated(store: BlobStore) -> None:
    data = "Lease § 4 – “Term”: twelve months.\n".encode() * 20_000  # ~0.7 MB, several parts
    stored = await store.put(stream(data))
    assert stored.key == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.created
    assert await store.exists(stored.key)
    assert await read_all(store, stored.key) == data

    again = await store.put(stream(data, piece=1000))
    assert again.key == stored.key
    assert not again.created

    assert await store.delete(stored.key)
    assert not await store.exists(stored.key)
    assert not await store.delete(stored.key)


async def test_empty_blob(store: BlobStore) -> None:
    stored = await store.put(stream(b""))
    assert stored.key == hashlib.sha256(b"").hexdigest()
    assert await read_all(store, stored.key) == b""


async def test_fifty_megabytes_stream_through_without_being_held_in_memory(
    store: BlobStore,
) -> None:
    total = 50 * MiB
    expected = hashlib.sha256()
    async for piece in generated(total):
        expected.update(piece)

    tracemalloc.start()
    try:
        stored = await store.put(generated(total))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest, size = hashlib.sha256(), 0
        async for part in store.open(stored.key):
            digest.update(part)
            size += len(part)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.key == expected.hexdigest()
    assert size == total
    assert digest.hexdigest() == expected.hexdigest()
    assert put_peak < 8 * MiB, f"put peaked at {put_peak / MiB:.1f} MiB"
    assert read_peak < 8 * MiB, f"read peaked at {read_peak / MiB:.1f} MiB"


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "../" + "a" * 61,
        "/" + "a" * 63,
        "A" * 64,
        "a" * 63,
        "a" * 64 + "/..",
        "a" * 62 + "\x00a",
        "",
    ],
)
async def test_keys_that_are_not_sha256_digests_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidInput, match="invalid blob key"):
        await store.exists(key)
    with pytest.raises(InvalidInput, match="invalid blob key"):
        await read_all(store, key)
    with pytest.raises(InvalidInput, match="invalid blob key"):
        await store.delete(key)


async def test_missing_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound) as raised:
        await read_all(store, "b" * 64)
    assert raised.value.code == ErrorCode.NOT_FOUND


async def test_too_large_upload_is_refused_and_leaves_nothing(
    store: BlobStore, sessions: SessionFactory, tmp_path: Path
) -> None:
    data = b"x" * (2 * MiB)
    with pytest.raises(FileTooLarge) as raised:
        await store.put(stream(data), max_bytes=MiB)
    assert raised.value.code == ErrorCode.FILE_TOO_LARGE
    assert not await store.exists(hashlib.sha256(data).hexdigest())
    await _assert_nothing_stored(sessions, tmp_path)


async def test_a_stream_that_fails_midway_leaves_nothing(
    store: BlobStore, sessions: SessionFactory, tmp_path: Path
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * MiB
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put(broken())
    await _assert_nothing_stored(sessions, tmp_path)


async def _assert_nothing_stored(sessions: SessionFactory, tmp_path: Path) -> None:
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM blobs")) == 0
        assert await session.scalar(text("SELECT count(*) FROM blob_parts")) == 0
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_validate_key_accepts_a_digest() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert validate_key(digest) == digest


def test_factory_follows_settings(
    settings: Settings, sessions: SessionFactory, tmp_path: Path
) -> None:
    assert isinstance(create_blob_store(settings, sessions), PostgresBlobStore)
    filesystem = settings.model_copy(update={"blob_backend": "filesystem", "blob_dir": tmp_path})
    store = create_blob_store(filesystem, sessions)
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path.resolve()
