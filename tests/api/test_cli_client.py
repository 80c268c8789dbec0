"""`lexintel ingest`, `search` and `status` run as a user would, against a live API."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from arq.worker import Worker
from pypdf import PdfReader, PdfWriter
from rich.progress import Progress

from lexintel_api.client import Outcome, _follow, overall_percent
from lexintel_core.embedded_servers import free_port
from tests.api.conftest import Api, Tenant
from tests.jobs.conftest import make_pdf


def _encrypted(pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


async def _lexintel(api: Api, key: str, *args: str) -> tuple[int, str]:
    executable = shutil.which("lexintel", path=str(Path(sys.executable).parent))
    assert executable is not None
    env = {**os.environ, "LEXINTEL_API_URL": api.url, "LEXINTEL_API_KEY": key, "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_ingest_a_folder_then_search_and_status(
    api: Api, worker: Worker, tmp_path: Path, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    folder = tmp_path / "matter"
    (folder / "exhibits").mkdir(parents=True)
    good = make_pdf(["Lease agreement", "The tenant shall pay a security deposit of $5,000."])
    (folder / "lease.pdf").write_bytes(good)
    (folder / "exhibits" / "lease-copy.pdf").write_bytes(good)
    (folder / "locked.pdf").write_bytes(_encrypted(make_pdf(["Privileged memo"])))
    (folder / ".hidden.pdf").write_bytes(good)

    peak = 0

    async def watch_hub() -> None:
        nonlocal peak
        while True:
            peak = max(peak, api.services.hub.subscriber_count)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_hub())
    code, output = await _lexintel(api, acme.key, "ingest", str(folder), "--case", "Lease dispute")
    watcher.cancel()

    assert code == 1, output  # the encrypted PDF failed
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if "│" in line}
    by_file = {Path(name).name: line for name, line in lines.items() if name.endswith(".pdf")}
    assert set(by_file) == {"lease.pdf", "lease-copy.pdf", "locked.pdf"}, output
    # exhibits/lease-copy.pdf is uploaded first (sorted paths); lease.pdf repeats its bytes.
    assert "READY" in by_file["lease-copy.pdf"]
    assert "DUPLICATE" in by_file["lease.pdf"]
    assert "FAILED" in by_file["locked.pdf"]
    assert "pdf_encrypted" in by_file["locked.pdf"]
    assert "password-protected" in by_file["locked.pdf"]  # the error message, not "failed"
    assert peak >= 1  # the bars were fed by documentProgress subscriptions

    code, output = await _lexintel(
        api, acme.key, "search", "security deposit", "--case", "Lease dispute", "--mode", "keyword"
    )
    assert code == 0, output
    assert "lease-copy.pdf" in output
    assert re.search(r"│ (1-)?2 +│", output), output  # the pages: the sentence is on page 2

    code, output = await _lexintel(api, acme.key, "status")
    assert code == 0, output
    assert "workers alive: 1" in output
    assert "READY" in output

    code, output = await _lexintel(api, acme.key, "search", "deposit", "--case", "No such case")
    assert code == 1
    assert "NOT_FOUND" in output


async def test_an_unreachable_api_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    closed = Api(app=None, port=free_port())  # type: ignore[arg-type]  # nothing listens
    for command in (["search", "deposit"], ["ingest", str(tmp_path), "--case", "C"], ["status"]):
        (tmp_path / "memo.txt").write_text("A memo.")
        code, output = await _lexintel(closed, "lxk_unused", *command)
        assert code == 1, output
        assert "cannot reach the API at" in output, output
        assert "Traceback" not in output
        assert len(output.strip().splitlines()) <= 3, output


def test_a_documents_bar_moves_through_the_stages_in_order() -> None:
    steps = [("QUEUED", 0), ("EXTRACT", 0), ("EXTRACT", 50), ("EXTRACT", 100), ("CHUNK", 100)]
    steps += [("EMBED", 0), ("EMBED", 40), ("EMBED", 100), ("DONE", 100)]
    bar = [overall_percent(stage, percent) for stage, percent in steps]
    assert bar == sorted(bar)
    assert (bar[2], bar[-1]) == (35, 100)


async def test_a_failed_documents_bar_stops_where_it_failed_in_red() -> None:
    events = [
        {"status": "QUEUED", "stage": "QUEUED", "percent": 0, "message": ""},
        {"status": "EXTRACTING", "stage": "EXTRACT", "percent": 40, "message": "page 2 of 5"},
        {
            "status": "FAILED",
            "stage": "DONE",
            "percent": 100,
            "message": "failed",
            "errorCode": "pdf_corrupt",
            "errorMessage": "the PDF is damaged",
        },
    ]

    class Client:
        async def subscribe(self, query: str, **variables: Any) -> AsyncIterator[dict[str, Any]]:
            for event in events:
                yield {"documentProgress": event}

    progress = Progress()
    task = progress.add_task("broken.pdf", total=100.0, state="queued")
    outcome = Outcome(Path("broken.pdf"), document_id="d1")
    await _follow(Client(), outcome, progress, task)  # type: ignore[arg-type]
    [shown] = progress.tasks
    assert shown.completed == 28  # 40 % of extraction: not a full bar
    assert shown.fields["state"] == "[red]failed: pdf_corrupt[/red]"
    assert (outcome.status, outcome.message) == ("FAILED", "the PDF is damaged")
