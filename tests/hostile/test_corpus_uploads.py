"""Every file of the shared sample corpus through the API path: multipart upload, worker,
live progress. Each ends READY, or FAILED with a stable code, within the time limit.

Needs the shared corpus (tests/corpus.py): skipped without it, failed in CI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from arq.worker import Worker

from tests.api.conftest import PROGRESS, Api, Tenant, create_case, execute, subscribe, upload
from tests.jobs.conftest import corpus_entries, pdf_sample

STABLE = {"pdf_encrypted", "pdf_corrupt", "no_text"}
DOCUMENT = "query($id: UUID!) { document(id: $id) { pageCount chunkCount } }"


async def test_every_corpus_pdf_through_the_api(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key, "Corpus")
    documents = {}
    for entry in corpus_entries():
        path = pdf_sample(entry["path"])
        document_id = await upload(api, acme.key, case_id, path.read_bytes(), path.name)
        documents[path.name] = (document_id, entry)
    watching = [subscribe(api, acme.key, PROGRESS, id=id_) for id_, _ in documents.values()]
    finals = await asyncio.wait_for(asyncio.gather(*watching), timeout=300)
    for (name, (document_id, entry)), events in zip(documents.items(), finals, strict=True):
        last = events[-1]["documentProgress"]
        assert last["status"] in ("READY", "FAILED"), (name, last)
        if last["status"] == "FAILED":
            assert last["errorCode"] in STABLE, (name, last)
        else:
            data = await execute(api, acme.key, DOCUMENT, id=document_id)
            assert data["document"]["pageCount"] == entry["pages"], name
            assert data["document"]["chunkCount"] > 0, name
    assert worker.jobs_failed == 0  # every outcome was recorded, none crashed a job
