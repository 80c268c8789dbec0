"""The worker's Redis client: a connection that dies while arq's job claim is watching a key
refuses the claim at EXEC, where arq handles it, instead of ending the worker
(python-arq/arq#498: the failure reached CI as a worker dead after a Redis restart)."""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.asyncio.connection import Connection
from redis.exceptions import WatchError

from lexintel_core import keys
from lexintel_core.settings import Settings
from lexintel_jobs.worker import redis_pool, worker_options


async def _kill(other: ArqRedis, connection: Connection) -> None:
    """Close `connection` from the server side, as a Redis restart does."""
    await connection.send_command("CLIENT", "ID")
    client_id = await connection.read_response()
    await other.client_kill_filter(_id=client_id)


async def test_a_connection_lost_while_watching_refuses_the_transaction_at_exec(
    settings: Settings, queue: ArqRedis
) -> None:
    pool = redis_pool(settings)
    try:
        await pool.set("claimed", "1")
        async with pool.pipeline(transaction=True) as pipe:
            await pipe.watch("claimed")
            assert pipe.connection is not None
            await _kill(queue, pipe.connection)
            # The reads are answered (on a new connection)...
            assert await pipe.exists("claimed") == 1
            assert await pipe.get("claimed") == b"1"
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set("claimed", "2")
            # ...and the transaction is refused, as if the key had changed.
            with pytest.raises(WatchError):
                await pipe.execute()
        assert await pool.get("claimed") == b"1"
    finally:
        await pool.aclose()


async def test_a_claim_whose_connection_dies_while_watching_leaves_the_worker_running(
    settings: Settings, queue: ArqRedis
) -> None:
    pool = redis_pool(settings)
    pipeline = pool.pipeline

    def killed_after_watch(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        watch = pipe.watch

        async def watch_then_die(*names: Any) -> Any:
            answer = await watch(*names)
            assert pipe.connection is not None
            await _kill(queue, pipe.connection)
            return answer

        pipe.watch = watch_then_die  # type: ignore[method-assign]
        return pipe

    pool.pipeline = killed_after_watch  # type: ignore[method-assign]
    job = await queue.enqueue_job("document.process", {}, _queue_name=keys.QUEUE_NAME)
    assert job is not None
    worker = Worker(**{**worker_options(settings), "redis_pool": pool, "handle_signals": False})
    try:
        await worker.start_jobs([job.job_id.encode()])  # before: WatchError, the worker ended
        assert worker.tasks == {}
        assert worker.job_counter == 0
        assert not await queue.exists(in_progress_key_prefix + job.job_id)
    finally:
        await pool.aclose()
