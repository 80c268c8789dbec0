"""Job payloads in Redis are JSON: a pickled job planted in the queue by someone who can write
to Redis is dropped without being unpickled, and the worker goes on with real work."""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from arq.constants import job_key_prefix
from arq.worker import Worker
from redis.asyncio import Redis

from lexintel_core import keys
from tests.api.conftest import PROGRESS, Api, Tenant, create_case, subscribe, upload


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


async def test_a_pickled_job_planted_in_the_queue_is_never_unpickled(
    api: Api,
    worker: Worker,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    job_id = uuid.uuid4().hex
    planted = pickle.dumps(
        {"t": 1, "f": "document.process", "a": [_Exploit(marker)], "k": {}, "et": 0}
    )
    await redis.set(job_key_prefix + job_id, planted)
    await redis.zadd(keys.QUEUE_NAME, {job_id: 1})

    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, b"Exhibit B.", "exhibit.txt")
    events = await subscribe(api, acme.key, PROGRESS, id=document_id)
    assert events[-1]["documentProgress"]["status"] == "READY"

    assert not marker.exists()
    assert worker.jobs_failed == 1  # the planted job, refused by the JSON deserializer
    assert await redis.zscore(keys.QUEUE_NAME, job_id) is None
