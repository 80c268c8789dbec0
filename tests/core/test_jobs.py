from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix

from lexintel_core import keys
from lexintel_core.errors import ErrorCode, InvalidInput
from lexintel_core.jobs import (
    PAYLOADS,
    EmbedDocument,
    JobName,
    ProcessDocument,
    enqueue,
    job_id,
    validate_payload,
)
from lexintel_core.settings import Settings


@pytest.fixture
async def arq_pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        default_queue_name=keys.QUEUE_NAME,
        job_serializer=lambda value: json.dumps(value).encode(),
        job_deserializer=json.loads,
    )
    yield pool
    await pool.flushdb()
    await pool.aclose()


def test_job_names_are_dotted_domain_verbs() -> None:
    for name in JobName:
        domain, verb = name.value.split(".")
        assert domain.isidentifier()
        assert verb.isidentifier()
    assert set(PAYLOADS) == set(JobName)


def test_job_id_is_deterministic_and_depends_on_payload() -> None:
    document_id = uuid.uuid4()
    first = job_id(JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document_id))
    again = job_id(JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document_id))
    rerun = job_id(JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document_id, generation=1))
    assert first == again
    assert first.startswith("document.process:")
    assert rerun != first


@pytest.mark.parametrize(
    "payload",
    [{}, {"document_id": "not-a-uuid"}, {"document_id": str(uuid.uuid4()), "unexpected": 1}],
)
def test_invalid_payloads_are_rejected(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_payload(JobName.DOCUMENT_PROCESS, payload)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "document.process" in raised.value.message


def test_a_payload_model_of_another_job_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="takes ProcessDocument, not EmbedDocument"):
        validate_payload(JobName.DOCUMENT_PROCESS, EmbedDocument(document_id=uuid.uuid4()))


async def test_enqueue_rejects_an_invalid_payload_before_touching_redis(
    arq_pool: ArqRedis,
) -> None:
    with pytest.raises(InvalidInput):
        await enqueue(arq_pool, JobName.DOCUMENT_EMBED, {"document_id": 42})
    assert await arq_pool.zcard(keys.QUEUE_NAME) == 0


async def test_enqueue_queues_json_arguments_once(arq_pool: ArqRedis) -> None:
    document_id = uuid.uuid4()
    first = await enqueue(arq_pool, JobName.DOCUMENT_PROCESS, {"document_id": str(document_id)})
    repeated = await enqueue(
        arq_pool, JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document_id)
    )
    assert first is not None
    assert repeated is None  # the double click queued nothing
    assert await arq_pool.zcard(keys.QUEUE_NAME) == 1

    [queued] = await arq_pool.queued_jobs(queue_name=keys.QUEUE_NAME)
    assert queued.function == "document.process"
    assert queued.job_id == first
    assert list(queued.args) == [{"document_id": str(document_id), "generation": 0}]
    raw = await arq_pool.get(f"{job_key_prefix}{first}")
    assert json.loads(raw)["a"] == [{"document_id": str(document_id), "generation": 0}]

    another = await enqueue(
        arq_pool, JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document_id, generation=1)
    )
    assert another is not None
    assert await arq_pool.zcard(keys.QUEUE_NAME) == 2
