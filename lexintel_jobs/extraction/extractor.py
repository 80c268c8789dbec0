"""Extractor: runs extract_file in child processes, with a time limit, a memory cap and
page progress, so that a hostile or broken file costs one document, never the worker.

Children are fresh interpreters started with asyncio's subprocess support (fork+exec, the
same thing multiprocessing's "spawn" does) rather than multiprocessing itself: "spawn" and
"forkserver" re-run the worker's __main__ in every child, which for a worker started as
`python -m ...` could mean importing torch under the child's memory cap. Talking over the
child's stdin/stdout also makes every wait a plain asyncio await.

A child stays warm after a document and takes the next one (start-up, mostly importing
pypdf, costs ~0.5 s of CPU); it is replaced whenever it is killed (timeout, cancellation,
on_page raising), runs out of memory, has grown past half its cap, or has done
MAX_DOCUMENTS_PER_CHILD documents.

A child OCRs a document's scanned pages in up to OcrOptions.jobs Tesseract processes at once
(pdf.py), in the child's process group like every helper it starts. Across the children,
every Tesseract takes one of `max_ocr_processes` slots shared by the Extractor (ocr.OcrSlots:
lock files in a directory it owns) and a document's second and later ones wait for one, so a
worker extracting several scans at once does not start jobs x documents processes on its
cores; a document's first Tesseract runs without a slot when none is free, so no document
waits on another. Pages finish out of order; on_page still hears of them in page order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from lexintel_core.errors import (
    FailureCode,
    LexIntelError,
    PermanentError,
    RetryableError,
)
from lexintel_jobs.extraction.model import PDF_ENGINES
from lexintel_jobs.extraction.ocr import OcrOptions, OcrSlots, available_cpus
from lexintel_jobs.extraction.pages import (
    Event,
    ExtractedDocument,
    OcrStarted,
    PageResult,
    Reading,
    assemble,
)
from lexintel_jobs.extraction.pdf import PagePlan
from lexintel_jobs.extraction.protocol import HEADER, MEMORY_EXIT_CODE, encode

MAX_DOCUMENTS_PER_CHILD = 100
# Children one document may use up on pages that crash or hang them; past this the document
# fails rather than cost minutes of restarts.
MAX_RESTARTS_PER_DOCUMENT = 20
START_TIMEOUT_SECONDS = 60.0  # a cold interpreter importing pypdf on a loaded machine
_EXIT_GRACE_SECONDS = 5.0
_PIPE_LIMIT = 1024 * 1024

# The child puts the worker's import path first, so it imports the very same code.
_BOOTSTRAP = (
    "import sys; sys.path[:0] = sys.argv[2:]; "
    "from lexintel_jobs.extraction.child import serve; serve(int(sys.argv[1]))"
)

# (pages done, pages in all, a note for people: "page 4 of 19", "OCR page 3 of 19").
OnPage = Callable[[int, int, str], Awaitable[None]]


class _PageHung(Exception):
    """The child spent longer than the page limit on one page."""


class _ChildGone(Exception):
    """The child's pipes closed before the answer came."""

    def __init__(self, *, silent: bool = False) -> None:
        super().__init__()
        self.silent = silent  # it had said nothing about the current document


class _Child:
    def __init__(self, process: asyncio.subprocess.Process, max_frame: int) -> None:
        self.process = process
        self.documents = 0
        self._max_frame = max_frame
        self._stopping: asyncio.Future[int] | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def send(self, message: object) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(encode(message))
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as error:
            raise _ChildGone(silent=True) from error

    async def receive(self) -> tuple[object, ...]:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
            if size > self._max_frame:  # cannot happen with an intact child: it is capped
                raise _ChildGone
            data = await stdout.readexactly(size)
        except asyncio.IncompleteReadError as error:
            raise _ChildGone from error
        return cast(tuple[object, ...], pickle.loads(data))  # noqa: S301 - our own child

    def kill(self) -> None:
        """Kill the child and whatever it started (Tesseract, converters): its group."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self, grace: float = 0.0) -> int:
        """Stop the child and reap it; its exit status. With a `grace`, the child first gets
        EOF on stdin and that long to exit by itself (an idle child does at once); then, or
        without one, it is killed. Safe to call from several tasks at once, and a cancelled
        caller does not leave the child unreaped."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        return await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> int:
        if self.process.stdin is not None:
            self.process.stdin.close()
        if grace > 0 and self.alive:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.process.wait()
        self.kill()
        if self.process.stdout is not None:
            # Reading to EOF lets asyncio close the transport (no ResourceWarning).
            with contextlib.suppress(Exception):
                await self.process.stdout.read()
        return await self.process.wait()


@dataclass
class _Document:
    """What the parent knows of the document being extracted, across child processes."""

    # Loop time; set when the first child takes the document, extended by OCR'd pages.
    deadline: float = 0.0
    results: dict[int, PageResult] = field(default_factory=dict)
    fallback: dict[int, tuple[str, str]] = field(default_factory=dict)
    reading: int | None = None  # the page the child is on, to blame for a crash or a hang
    ocr_in_flight: set[int] = field(default_factory=set)
    total: int = 0
    announced: int = 0  # on_page has heard of pages 1..announced being done


class _PageLost(Exception):
    """The child died or hung on page `number` (None: between pages); `status` its exit
    status (None: it hung)."""

    def __init__(self, number: int | None, status: int | None) -> None:
        super().__init__(number)
        self.number = number
        self.status = status


class Extractor:
    """Extract documents in child processes: at most `max_concurrency` at once, each within
    `timeout_seconds` (PermanentError TIMEOUT; every OCR'd page adds the OCR page timeout)
    and `memory_limit_mb` (TOO_LARGE). A PDF page that kills its child (a crash, the memory
    cap) or hangs longer than `page_timeout_seconds` is a failed page: a fresh child goes
    on with the next page. pypdfium2 pages that crash are tried once with pypdf first.
    Scanned pages are OCR'd in up to `ocr.jobs` Tesseract processes per document; a second
    and later one only while fewer than `max_ocr_processes` (default: the CPUs this process
    may use) run across all documents."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        memory_limit_mb: int,
        max_concurrency: int,
        pdf_engine: str = "pypdf",
        ocr: OcrOptions | None = None,
        page_timeout_seconds: float = 30.0,
        max_ocr_processes: int | None = None,
    ) -> None:
        if pdf_engine not in PDF_ENGINES:
            raise ValueError(f"unknown PDF engine {pdf_engine!r}; choose one of {PDF_ENGINES}")
        max_ocr_processes = max_ocr_processes or available_cpus()
        limits = (timeout_seconds, memory_limit_mb, max_concurrency, page_timeout_seconds)
        if min(*limits, max_ocr_processes) <= 0:
            raise ValueError("timeouts, memory limit and concurrency must be positive")
        self._max_ocr_processes = max_ocr_processes
        self._ocr_slots: OcrSlots | None = None  # made when a document first needs them
        self._timeout = timeout_seconds
        self._page_timeout = page_timeout_seconds
        self._memory_limit_mb = memory_limit_mb
        self._pdf_engine = pdf_engine
        self._ocr = ocr if ocr is not None else OcrOptions(mode="off")
        self._slots = asyncio.Semaphore(max_concurrency)
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._closed = False

    async def extract(self, path: Path, on_page: OnPage | None = None) -> ExtractedDocument:
        """The text of the document at `path`, page by page, with its text coverage.

        `on_page(done, total, note)` is awaited as pages are read ("page 4 of 19"), in page
        order (`done`: pages 1..done are read), and as their OCR starts ("OCR page 3 of 19"),
        while the child goes on. If it raises, the
        child is killed and the exception propagates unchanged. The time limit covers the
        whole document, on_page awaits included.
        """
        self._check_open()
        async with self._slots:
            self._check_open()
            state = _Document()
            lost: _PageLost | None = None
            for _ in range(MAX_RESTARTS_PER_DOCUMENT + 1):
                try:
                    result = await self._run(path, state, on_page)
                except _PageLost as error:
                    lost = error
                    self._blame(state, lost)
                    continue
                if isinstance(result, LexIntelError):
                    raise result
                content_type, engine = result
                return assemble(content_type, engine, state.results, state.total)
            code, message = (
                _death_cause(lost.status)
                if lost is not None and lost.status is not None
                else (FailureCode.TIMEOUT, "pages kept hanging")
            )
            raise PermanentError(
                f"extraction stopped {MAX_RESTARTS_PER_DOCUMENT + 1} times; last: {message}",
                code=code,
            )

    def _blame(self, state: _Document, lost: _PageLost) -> None:
        """Record the page that killed or hung its child: tried again with pypdf first when
        pypdfium2 read it, else failed."""
        if lost.number is None:
            return
        if lost.status is None:
            code = FailureCode.TIMEOUT
            message = f"reading the page took longer than {self._page_timeout:g} s"
        else:
            code, message = _death_cause(lost.status)
        if self._pdf_engine == "pypdfium2" and lost.number not in state.fallback:
            state.fallback[lost.number] = (code.value, message)
        else:
            state.results[lost.number] = PageResult.failed(lost.number, code, message)

    async def _run(
        self, path: Path, state: _Document, on_page: OnPage | None
    ) -> tuple[str, str] | LexIntelError:
        """One child's pass over the document, its pages going into `state`: (content type,
        engine), or the error the child reported. Raises _PageLost for a page that killed
        or hung the child."""
        plan = PagePlan(
            ocr=self._ocr,
            skip=frozenset(state.results),
            fallback=dict(state.fallback),
            ocr_slots=self._shared_ocr_slots(),
        )
        job = (str(path), self._pdf_engine, self._timeout, plan)
        child = await self._take_child()
        if not state.deadline:  # a cold child's start-up is not the document's time
            state.deadline = asyncio.get_running_loop().time() + self._timeout
        state.reading = None
        reusable: bool | None = None  # known once the child has answered
        try:
            try:
                result, reusable = await self._answer(child, job, state, on_page)
            except _ChildGone as gone:
                if not gone.silent or child.documents == 0:
                    raise
                # A warm child that died without a word about this document died while
                # idle (the OOM killer, an operator): the document deserves a fresh one.
                await self._retire(child)
                child = await self._start_child()
                result, reusable = await self._answer(child, job, state, on_page)
        except _ChildGone:
            status = await self._exit_status(child)
            if self._closed:
                raise RetryableError(
                    "extraction was interrupted: the worker is shutting down"
                ) from None
            if state.reading is not None:
                # Between two pages, or waiting for OCR, a death is no page's fault: the
                # next child goes on from where this one stopped.
                done = state.reading in state.results
                raise _PageLost(None if done else state.reading, status) from None
            code, message = _death_cause(status)
            raise PermanentError(message, code=code) from None
        except _PageHung:
            assert state.reading is not None
            raise _PageLost(state.reading, None) from None
        finally:
            child.documents += 1
            if reusable and not self._closed and child.documents < MAX_DOCUMENTS_PER_CHILD:
                self._idle.append(child)
            else:
                # A child that has answered exits by itself; any other is killed at once.
                await self._retire(child, _EXIT_GRACE_SECONDS if reusable is not None else 0)
        return result

    async def aclose(self) -> None:
        """Stop every child and reap them all: running ones are killed at once, idle ones
        are told to exit. Extractions still running raise RetryableError."""
        self._closed = True
        idle, self._idle = self._idle, []
        running = [child for child in self._children if child not in idle]
        for child in running:
            child.kill()
        await asyncio.gather(
            *(self._retire(child) for child in running),
            *(self._retire(child, _EXIT_GRACE_SECONDS) for child in idle),
        )
        if self._ocr_slots is not None:
            shutil.rmtree(self._ocr_slots.directory, ignore_errors=True)

    def _shared_ocr_slots(self) -> OcrSlots | None:
        if self._ocr.mode == "off" or self._ocr.jobs == 1:
            return None
        if self._ocr_slots is None:
            directory = Path(tempfile.mkdtemp(prefix="lexintel-ocr-slots-"))
            self._ocr_slots = OcrSlots.create(directory, self._max_ocr_processes)
        return self._ocr_slots

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the extractor is closed")

    async def _take_child(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.alive:
                return child
            await self._retire(child)
        return await self._start_child()

    async def _start_child(self) -> _Child:
        paths = [entry or str(Path.cwd()) for entry in sys.path]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BOOTSTRAP,
            str(self._memory_limit_mb),
            *paths,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_PIPE_LIMIT,
            start_new_session=True,  # a group of its own, so kill() reaches its helpers too
        )
        child = _Child(process, max_frame=max(self._memory_limit_mb, 64) * 1024 * 1024)
        self._children.add(child)
        try:
            if self._closed:  # aclose ran while the process was being created
                raise _ChildGone
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                ready = await child.receive()
            if ready != ("ready",):
                raise _ChildGone
        except (_ChildGone, TimeoutError):
            status = await self._retire(child)
            raise RetryableError(
                f"the extraction process did not start (exit status {status})"
            ) from None
        except BaseException:
            await self._retire(child)
            raise
        return child

    async def _answer(
        self,
        child: _Child,
        job: tuple[str, str, float, PagePlan],
        state: _Document,
        on_page: OnPage | None,
    ) -> tuple[tuple[str, str] | LexIntelError, bool]:
        """Hand `job` to `child` and follow its reports into `state`: ((content type, engine)
        or the error the child reported, whether the child may be reused). Raises _PageHung
        when a page takes longer than the page limit, PermanentError TIMEOUT past the
        document's deadline."""
        loop = asyncio.get_running_loop()
        heard = False
        await child.send(job)
        while True:
            left = state.deadline - loop.time()
            page_limit = None  # only once a page is being read: opening may take long
            if state.reading is not None and state.reading not in state.results:
                page_limit = self._page_timeout
            if state.ocr_in_flight:
                page_limit = self._page_timeout + self._ocr.page_timeout_seconds
            try:
                async with asyncio.timeout(max(0.0, min(left, page_limit or left))):
                    message = await child.receive()
            except _ChildGone:
                raise _ChildGone(silent=not heard) from None
            except TimeoutError:
                if page_limit is not None and page_limit < left:
                    raise _PageHung from None
                raise PermanentError(
                    f"extracting the document took longer than {self._timeout:g} s",
                    code=FailureCode.TIMEOUT,
                ) from None
            heard = True
            if message[0] == "event":
                for done, note in self._follow(cast(Event, message[1]), state):
                    if on_page is not None:
                        await on_page(done, state.total, note)
            elif message[0] == "ok":
                _, content_type, engine, total, reusable = message
                state.total = cast(int, total)
                return (str(content_type), str(engine)), bool(reusable)
            else:
                _, kind, code, text, reusable = message
                error_type = PermanentError if kind == "permanent" else RetryableError
                return error_type(str(text), code=FailureCode(str(code))), bool(reusable)

    def _follow(self, event: Event, state: _Document) -> list[tuple[int, str]]:
        """Take one page event into `state`; the (done, note) pairs for on_page it makes due.
        A page done after a later one (OCR'd pages finish out of order) is noted with those
        after it."""
        state.total = event.total
        if isinstance(event, Reading):
            state.reading = event.number
            return []
        if isinstance(event, OcrStarted):
            state.ocr_in_flight.add(event.number)
            state.deadline += self._ocr.page_timeout_seconds
            return [(state.announced, f"OCR page {event.number} of {event.total}")]
        number = event.result.number
        state.results[number] = event.result
        state.ocr_in_flight.discard(number)
        notes = []
        while state.announced + 1 in state.results:
            state.announced += 1
            notes.append((state.announced, f"page {state.announced} of {event.total}"))
        return notes

    async def _exit_status(self, child: _Child) -> int:
        try:
            async with asyncio.timeout(_EXIT_GRACE_SECONDS):
                return await child.process.wait()
        except TimeoutError:
            return await child.stop()

    async def _retire(self, child: _Child, grace: float = 0.0) -> int:
        self._children.discard(child)
        return await child.stop(grace)


def _death_cause(status: int) -> tuple[FailureCode, str]:
    """The error code and message for a child that died with exit `status`."""
    if status in (MEMORY_EXIT_CODE, -signal.SIGKILL):  # SIGKILL: the kernel's OOM killer
        return (
            FailureCode.TOO_LARGE,
            f"the extraction process ran out of memory (exit status {status})",
        )
    if status == -signal.SIGXCPU:
        return FailureCode.TIMEOUT, f"extraction used up its CPU time (exit status {status})"
    return FailureCode.PDF_CORRUPT, f"the document parser crashed (exit status {status})"
