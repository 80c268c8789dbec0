"""Hostile files through the whole path: multipart upload, worker, extraction children.

Every file must be refused at upload with a stable code, or end READY or FAILED with a stable
code within the time limit; the worker survives all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import zipfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]
import pytest
from arq.worker import Worker
from pypdf import PdfWriter

from tests.api.conftest import (
    PROGRESS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    subscribe,
    upload,
)
from tests.jobs.conftest import make_pdf

MB = 1024 * 1024
STABLE_FAILURES = {
    "pdf_corrupt",
    "pdf_encrypted",
    "unsupported_type",
    "no_text",
    "too_large",
    "timeout",
}


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF from raw objects (1-based), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _page_with_content(content: bytes, *, filtered: bool = False) -> bytes:
    stream = zlib.compress(content, 9) if filtered else content
    flate = b" /Filter /FlateDecode" if filtered else b""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d%s >>\nstream\n" % (len(stream), flate) + stream + b"\nendstream",
        ]
    )


def _circular_xref() -> bytes:
    good = make_pdf(["Circular"])
    start = good.rindex(b"startxref")
    offset = int(good[start:].split()[1])
    # A trailer whose /Prev points back at its own xref section.
    return good.replace(b"trailer\n<<", b"trailer\n<< /Prev %d" % offset, 1)


def _blank_pages(count: int) -> bytes:
    writer = PdfWriter()
    for _ in range(count):
        writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _docx_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<w:t>" + b"A" * (300 * 1024 * 1024))
    return buffer.getvalue()


HOSTILE: dict[str, bytes] = {
    "truncated.pdf": make_pdf(["A truncated contract"] * 3)[:600],
    "circular-xref.pdf": _circular_xref(),
    "flate-bomb.pdf": _page_with_content(b"0 " * (100 * 1024 * 1024), filtered=True),
    "ten-thousand-blank-pages.pdf": _blank_pages(10_000),
    "nested-arrays.pdf": _page_with_content(b"[" * 50_000 + b"]" * 50_000),
    "actually-a-pdf.jpg": make_pdf(["A PDF with the wrong name"]),
    "word-bomb.docx": _docx_bomb(),
    "one-tag.html": b"<html><body>" + b"<b>" * (2 * 1024 * 1024) + b"</body></html>",
    "latin-1.txt": "Der Käufer zahlt die Gebühr; né à Montréal.".encode("latin-1"),
    "utf-16.txt": "Witness statement of José Núñez.".encode("utf-16-le"),
    "../../etc/" + "\x1b[31m\n" + "x" * 200 + ".txt": b"A plain text exhibit.",
}
REFUSED_AT_UPLOAD = {
    "empty.pdf": (b"", "INVALID_INPUT"),
    "photo.pdf": (b"\xff\xd8\xff\xe0" + bytes(2000), "UNSUPPORTED_TYPE"),
}


@dataclass
class MemoryWatch:
    """Peak RSS of this process (API and worker) and of its extraction children, sampled
    every 50 ms while the block runs."""

    own_growth_mb: float = 0.0
    children_peak_mb: float = 0.0

    async def _sample(self) -> None:
        me = psutil.Process()
        baseline = me.memory_info().rss
        while True:
            self.own_growth_mb = max(self.own_growth_mb, (me.memory_info().rss - baseline) / MB)
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.children_peak_mb = max(self.children_peak_mb, child.memory_info().rss / MB)
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> MemoryWatch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_hostile_files_end_ready_or_failed_with_stable_codes(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    for name, (content, code) in REFUSED_AT_UPLOAD.items():
        with pytest.raises(GraphQLFailed) as failure:
            await upload(api, acme.key, case_id, content, name)
        assert failure.value.code == code, name

    documents = {
        name: await upload(api, acme.key, case_id, content, name)
        for name, content in HOSTILE.items()
    }
    started = time.monotonic()
    async with MemoryWatch() as memory:
        finals = await asyncio.wait_for(
            asyncio.gather(
                *(
                    subscribe(api, acme.key, PROGRESS, id=document_id)
                    for document_id in documents.values()
                )
            ),
            timeout=240,
        )
    elapsed = time.monotonic() - started
    outcome = {
        name: events[-1]["documentProgress"] for name, events in zip(documents, finals, strict=True)
    }
    for name, event in outcome.items():
        assert event["status"] in ("READY", "FAILED"), (name, event)
        if event["status"] == "FAILED":
            assert event["errorCode"] in STABLE_FAILURES, (name, event)
    for readable in ("actually-a-pdf.jpg", "latin-1.txt", "utf-16.txt"):
        assert outcome[readable]["status"] == "READY", (readable, outcome[readable])
    assert outcome["word-bomb.docx"]["errorCode"] in ("too_large", "unsupported_type")
    assert elapsed < 240
    # Parsers run in children capped at LEXINTEL_EXTRACT_MEMORY_LIMIT_MB (512 here); the
    # process holding the API and the worker never holds a bomb's decompressed bytes.
    assert memory.children_peak_mb < 512, memory
    assert memory.own_growth_mb < 256, memory
    # The hostile name is stored as a plain file name: no path, no control characters.
    listed = await execute(api, acme.key, "{ documents(first: 50) { nodes { filename } } }")
    names = [node["filename"] for node in listed["documents"]["nodes"]]
    # (the client percent-encodes the newline; the server drops the escape character)
    assert any(name.endswith("x" * 200 + ".txt") for name in names), names
    assert all("/" not in n and n.isprintable() for n in names), names
    # The worker is still alive and taking work.
    last = await upload(api, acme.key, case_id, b"After the storm.", "after.txt")
    events = await subscribe(api, acme.key, PROGRESS, id=last)
    assert events[-1]["documentProgress"]["status"] == "READY"
