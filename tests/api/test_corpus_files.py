"""Every file of the shared corpus's regressions/ and formats/ folders through the real API and
worker, ending as ../shared/corpus/README.md says, with its words found by KEYWORD search.

Each regression stands for a fault kind seen in public bug reports of the libraries we use;
the unit tests of that kind live in tests/jobs (test_normalize, test_formats, test_pages)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from arq.worker import Worker

from lexintel_core.settings import Settings
from tests.api.conftest import (
    PROGRESS,
    Api,
    Tenant,
    create_case,
    execute,
    subscribe,
    upload,
)
from tests.corpus import corpus_path
from tests.tools import require_binary

SEARCH = """
query($q: String!, $caseId: UUID) {
  search(query: $q, caseId: $caseId, mode: KEYWORD, limit: 5) {
    pageStart pageEnd snippet document { id filename }
  }
}
"""
DOCUMENT = """
query($id: UUID!) {
  document(id: $id) {
    status errorCode errorMessage pageCount warning contentType
    textCoverage {
      pagesTotal pagesTextLayer pagesOcr pagesBlank pagesWithoutText ocrMeanConfidence
      failedPages { page code message }
    }
  }
}
"""
FORMAT_WORDS = ["Harrowgate", "Quenby", "Vermont", "confidential"]
# (folder, file): the words a KEYWORD search must find in it.
EXPECTED: dict[tuple[str, str], list[str]] = {
    ("regressions", "line-end-hyphenation.pdf"): ["indemnification", "quarrymastership"],
    ("regressions", "ligatures.pdf"): ["Beneficiary", "office", "Confidentiality"],
    ("regressions", "soft-hyphens.html"): ["indemnification", "counterclaim", "arbitration"],
    ("regressions", "czech-lease-cp1250.txt"): ["Přerov", "Žďár", "účinnosti"],
    ("regressions", "page-count-lie.pdf"): ["Zanzibarco"],
    ("regressions", "flate-bomb-page2.pdf"): ["Pemberwick"],
    ("formats", "settlement.doc"): FORMAT_WORDS,
    ("formats", "settlement.rtf"): FORMAT_WORDS,
    ("formats", "settlement.odt"): FORMAT_WORDS,
    ("formats", "court-order.wpd"): ["Indiana", "Appellant"],
}


@pytest.fixture(params=["pypdfium2", "pypdf"])
def api_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(
        update={
            "embedding_provider": "hashing",
            "max_upload_bytes": 8 * 1024 * 1024,
            "retry_delays_seconds": [0.2],
            "retry_jitter": 0.0,
            "extract_timeout_seconds": 60.0,
            "extract_memory_limit_mb": 512,
            "pdf_engine": request.param,
        }
    )


async def _process(
    api: Api, key: str, case_id: str, folder: str, name: str
) -> tuple[str, dict[str, Any]]:
    content = corpus_path(folder, name).read_bytes()
    document_id = await upload(api, key, case_id, content, name)
    await asyncio.wait_for(subscribe(api, key, PROGRESS, id=document_id), timeout=120)
    data = await execute(api, key, DOCUMENT, id=document_id)
    return document_id, data["document"]


async def test_every_regression_and_format_file_ends_as_the_corpus_says(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    require_binary("antiword", package="antiword")
    require_binary("wpd2text", package="libwpd-tools")
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key, "Corpus")
    documents = {}
    for (folder, name), words in EXPECTED.items():
        started = time.monotonic()
        document_id, document = await _process(api, acme.key, case_id, folder, name)
        documents[name] = document
        assert document["status"] == "READY", (name, document)
        if name == "page-count-lie.pdf":  # one real page, in seconds: not 1,000,000 tried
            assert document["pageCount"] == 1
            assert time.monotonic() - started < 20
        for word in words:
            hits = (await execute(api, acme.key, SEARCH, q=word, caseId=case_id))["search"]
            mine = [hit for hit in hits if hit["document"]["id"] == document_id]
            assert mine, (name, word)
            assert all("\ufffe" not in hit["snippet"] for hit in hits)

    # The bomb costs its page, reported as a memory cap (never "corrupt"), not the document.
    bomb = documents["flate-bomb-page2.pdf"]
    coverage = bomb["textCoverage"]
    assert bomb["pageCount"] == 2
    assert coverage["pagesTextLayer"] == 1
    assert [(page["page"], page["code"]) for page in coverage["failedPages"]] == [(2, "too_large")]
    assert coverage["pagesWithoutText"] == 1
    assert "page 2" in bomb["warning"]
    for name, document in documents.items():
        if name != "flate-bomb-page2.pdf":
            assert document["warning"] is None, (name, document)
            assert document["textCoverage"]["failedPages"] == [], name
    # Word 97-2003 and WordPerfect are recognised as such, not as unknown binary data.
    assert documents["settlement.doc"]["contentType"] == "application/msword"
    assert documents["court-order.wpd"]["contentType"] == "application/vnd.wordperfect"
    # The worker lived on: the files after the bomb were processed by the same worker.
    assert worker.jobs_failed == 0
