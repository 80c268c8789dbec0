"""Redis going silent: packets dropped, no reset, no error, just nothing.

A TCP proxy between the API (or `lexintel worker --check`) and the real Redis stands in for
the network. `cut()` drops everything: the connections open at that moment, and those opened
during the cut, stay open but never carry another byte (as TCP connections whose
retransmissions, of data or of the handshake, have backed off past the test's horizon).
After `restore()` new connections work. Whoever publishes progress still reaches Redis
directly, like a worker on another host.

Each test fails on the code before Redis health checks: the hub never noticed the dead
connection (subscribers got nothing after the restore), and `/readyz` and the worker check
hung on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from arq.constants import health_check_key_suffix
from redis.asyncio import Redis

from lexintel_api.hub import ProgressHub
from lexintel_core import keys
from lexintel_core.progress import ProgressEvent, Stage, publish_progress
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from tests.api.conftest import serve
from tests.workers import worker_env

S = ProcessingStatus
LEXINTEL = shutil.which("lexintel", path=str(Path(sys.executable).parent))

# Small, so the tests are quick; what they bound is health check + reply timeout (noticing)
# and connect timeout + retry interval (resuming).
HEALTH_CHECK = 0.5
REPLY_TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0
# Bounds with room for a loaded 2-core machine (each measured well under half of it).
NOTICE_WITHIN = HEALTH_CHECK + REPLY_TIMEOUT + 2.0
RESUME_WITHIN = 5.0
CUT_SECONDS = 4.0


class Blackhole:
    """A TCP proxy to `target` that can drop everything without closing anything."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        assert parts.hostname is not None
        assert parts.port is not None
        self._target = (parts.hostname, parts.port)
        self._path = parts.path
        self._epoch = 0  # connections of an earlier epoch were cut: they never carry again
        self._cut = False
        self._never = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self._path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self._epoch += 1
        self._cut = True

    def restore(self) -> None:
        self._cut = False

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(self._serve(reader, writer))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self._cut:
            await self._never.wait()  # its handshake is lost, and every retry until too late
        epoch = self._epoch
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers.append(upstream_writer)
        self._spawn(self._pump(epoch, reader, upstream_writer))
        self._spawn(self._pump(epoch, upstream_reader, writer))

    async def _pump(
        self, epoch: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if epoch != self._epoch:
                    await self._never.wait()  # lost for good, and nobody says so
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.fixture
async def blackhole(settings: Settings, redis: Redis) -> AsyncIterator[Blackhole]:
    # `redis` empties the test database afterwards.
    proxy = Blackhole(settings.redis_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()


def _settings(settings: Settings, proxy: Blackhole) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": proxy.url,
            "redis_health_check_seconds": HEALTH_CHECK,
            "redis_timeout_seconds": REPLY_TIMEOUT,
            "redis_connect_timeout_seconds": CONNECT_TIMEOUT,
            "embedding_provider": "hashing",
        }
    )


async def _publish(
    redis: Redis, document_id: uuid.UUID, status: ProcessingStatus, percent: float
) -> ProgressEvent:
    stage = Stage.DONE if status == S.READY else Stage.EXTRACT
    event = ProgressEvent(
        document_id=document_id, case_id=uuid.uuid4(), stage=stage, status=status, percent=percent
    )
    published = await publish_progress(redis, event)
    assert published is not None
    return published


async def _wait_for(predicate: Callable[[], bool], within: float) -> float:
    """Seconds until `predicate()` held; fails after `within`."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling what the hub received
            await asyncio.sleep(0.02)
    return time.monotonic() - started


def _lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if "lost its Redis Pub/Sub connection" in record.getMessage()
    ]


async def test_the_hub_notices_a_silent_cut_and_resumes_soon_after_the_restore(
    settings: Settings,
    redis: Redis,
    blackhole: Blackhole,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="lexintel_api.hub")
    hub = ProgressHub.from_settings(_settings(settings, blackhole))
    document_id = uuid.uuid4()
    await _publish(redis, document_id, S.EXTRACTING, 0)
    received: list[tuple[float, ProgressEvent]] = []

    async def watch() -> None:
        async for event in hub.watch_document(document_id):
            received.append((time.monotonic(), event))

    await hub.start()
    watcher = asyncio.create_task(watch())
    try:
        await _wait_for(lambda: len(received) == 1, within=10)
        live = await _publish(redis, document_id, S.EXTRACTING, 10)
        await _wait_for(lambda: received[-1][1] == live, within=10)

        blackhole.cut()
        cut = time.monotonic()
        # Published while the hub cannot hear: only the snapshot keeps it.
        during = await _publish(redis, document_id, S.EXTRACTING, 20)
        noticed = await _wait_for(lambda: bool(_lost(caplog)), within=CUT_SECONDS + 10)
        assert "PING" in _lost(caplog)[0], _lost(caplog)
        while time.monotonic() < cut + CUT_SECONDS:
            during = await _publish(redis, document_id, S.EXTRACTING, during.percent + 1)
            await asyncio.sleep(0.2)
        heard_during = [event for at, event in received if at > cut]

        blackhole.restore()
        restored = time.monotonic()
        resumed = await _wait_for(
            lambda: any(event == during for _, event in received), within=RESUME_WITHIN + 30
        )
        terminal = await _publish(redis, document_id, S.READY, 100)
        async with asyncio.timeout(10):
            await watcher
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await hub.aclose()
    with capsys.disabled():
        print(
            f"\nsilent Redis cut: the hub noticed after {noticed:.2f} s (health check "
            f"{HEALTH_CHECK} s + reply timeout {REPLY_TIMEOUT} s), subscribers resumed "
            f"{resumed:.2f} s after the restore"
        )
    assert heard_during == []
    assert noticed <= NOTICE_WITHIN
    assert resumed <= RESUME_WITHIN
    assert received[-1][1] == terminal
    assert hub.reconnects >= 1
    assert any("reconnected to Redis" in r.getMessage() for r in caplog.records)
    assert restored - cut >= CUT_SECONDS


async def test_readyz_answers_503_naming_redis_during_a_silent_cut(
    settings: Settings, blackhole: Blackhole, capsys: pytest.CaptureFixture[str]
) -> None:
    api_settings = _settings(settings, blackhole)
    deadline = api_settings.readiness_timeout_seconds
    # A readiness probe that hangs holds uvicorn's shutdown too: fail instead of hanging.
    async with (
        asyncio.timeout(60),
        serve(api_settings) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as http,
    ):
        assert (await http.get("/readyz")).status_code == 200

        blackhole.cut()
        answers = []
        for _ in range(2):
            started = time.monotonic()
            response = await http.get("/readyz")
            answers.append((time.monotonic() - started, response))
        blackhole.restore()
        restored = time.monotonic()
        while (after := await http.get("/readyz")).status_code != 200:
            assert time.monotonic() - restored < RESUME_WITHIN, after.text
            await asyncio.sleep(0.1)
        ready_again = time.monotonic() - restored
    with capsys.disabled():
        print(
            "\n/readyz during a silent Redis cut: "
            + ", ".join(f"{r.status_code} in {s:.2f} s" for s, r in answers)
            + f"; 200 again {ready_again:.2f} s after the restore"
        )
    for seconds, response in answers:
        assert response.status_code == 503, response.text
        checks = response.json()["checks"]
        assert checks["redis"].startswith("unavailable"), checks
        assert checks["database"] == checks["migrations"] == "ok", checks
        assert seconds < deadline + 1.0


async def _worker_check(env: dict[str, str]) -> tuple[int, float, str]:
    assert LEXINTEL is not None, "the lexintel console script is not installed"
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        LEXINTEL, "worker", "--check", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, time.monotonic() - started, output.decode(errors="replace")


async def test_worker_check_fails_fast_naming_redis_during_a_silent_cut(
    settings: Settings, redis: Redis, blackhole: Blackhole, capsys: pytest.CaptureFixture[str]
) -> None:
    env = worker_env(settings, REDIS_URL=blackhole.url)
    deadline = settings.readiness_timeout_seconds
    # What a live worker keeps fresh (every arq worker of the queue).
    await redis.set(keys.QUEUE_NAME + health_check_key_suffix, b"alive")

    code, before, output = await _worker_check(env)
    assert code == 0, output
    blackhole.cut()
    code, during, output = await _worker_check(env)
    blackhole.restore()
    assert code == 1, output
    assert "redis: unavailable" in output, output
    assert "database: ok" in output, output
    # The interpreter's start-up is most of `before`; the cut adds the deadline at most.
    assert during < before + deadline + 3.0, (before, during)
    code, _, output = await _worker_check(env)
    assert code == 0, output
    with capsys.disabled():
        print(
            f"\nlexintel worker --check: {before:.2f} s with Redis reachable, exit 1 in "
            f"{during:.2f} s during a silent cut"
        )
