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
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from lexintel_core.errors import ErrorCode, LexIntelError, PermanentError, RetryableError
from lexintel_jobs.extraction.model import PDF_ENGINES, ExtractedDocument
from lexintel_jobs.extraction.protocol import HEADER, MEMORY_EXIT_CODE, encode

MAX_DOCUMENTS_PER_CHILD = 100
START_TIMEOUT_SECONDS = 60.0  # a cold interpreter importing pypdf on a loaded machine
_EXIT_GRACE_SECONDS = 5.0
_PIPE_LIMIT = 1024 * 1024

# The child puts the worker's import path first, so it imports the very same code.
_BOOTSTRAP = (
    "import sys; sys.path[:0] = sys.argv[2:]; "
    "from lexintel_jobs.extraction.child import serve; serve(int(sys.argv[1]))"
)

OnPage = Callable[[int, int], Awaitable[None]]


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
        if self.alive:
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


class Extractor:
    """Extract documents in child processes: at most `max_concurrency` at once, each within
    `timeout_seconds` (PermanentError TIMEOUT) and `memory_limit_mb` (TOO_LARGE)."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        memory_limit_mb: int,
        max_concurrency: int,
        pdf_engine: str = "pypdf",
    ) -> None:
        if pdf_engine not in PDF_ENGINES:
            raise ValueError(f"unknown PDF engine {pdf_engine!r}; choose one of {PDF_ENGINES}")
        if timeout_seconds <= 0 or memory_limit_mb <= 0 or max_concurrency < 1:
            raise ValueError("timeout, memory limit and concurrency must be positive")
        self._timeout = timeout_seconds
        self._memory_limit_mb = memory_limit_mb
        self._pdf_engine = pdf_engine
        self._slots = asyncio.Semaphore(max_concurrency)
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._closed = False

    async def extract(self, path: Path, on_page: OnPage | None = None) -> ExtractedDocument:
        """The text of the document at `path`, page by page.

        `on_page(done, total)` is awaited once per page, in order, while the child goes on.
        If it raises, the child is killed and the exception propagates unchanged. The time
        limit covers the whole document, on_page awaits included.
        """
        self._check_open()
        job = (str(path), self._pdf_engine, self._timeout)
        async with self._slots:
            self._check_open()
            child = await self._take_child()
            reusable: bool | None = None  # known once the child has answered
            try:
                try:
                    result, reusable = await self._answer(child, job, on_page)
                except _ChildGone as gone:
                    if not gone.silent or child.documents == 0:
                        raise
                    # A warm child that died without a word about this document died while
                    # idle (the OOM killer, an operator): the document deserves a fresh one.
                    await self._retire(child)
                    child = await self._start_child()
                    result, reusable = await self._answer(child, job, on_page)
            except _ChildGone:
                raise await self._death(child) from None
            finally:
                child.documents += 1
                if reusable and not self._closed and child.documents < MAX_DOCUMENTS_PER_CHILD:
                    self._idle.append(child)
                else:
                    # A child that has answered exits by itself; any other is killed at once.
                    await self._retire(child, _EXIT_GRACE_SECONDS if reusable is not None else 0)
        if isinstance(result, LexIntelError):
            raise result
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
        self, child: _Child, job: tuple[str, str, float], on_page: OnPage | None
    ) -> tuple[ExtractedDocument | LexIntelError, bool]:
        """Hand `job` to `child`; (the document or the error the child reported, whether the
        child may be reused)."""
        heard = False
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                await child.send(job)
                while True:
                    try:
                        message = await child.receive()
                    except _ChildGone:
                        raise _ChildGone(silent=not heard) from None
                    heard = True
                    if message[0] == "page":
                        if on_page is not None:
                            await on_page(cast(int, message[1]), cast(int, message[2]))
                    elif message[0] == "ok":
                        return cast(ExtractedDocument, message[1]), bool(message[2])
                    else:
                        _, kind, code, text, reusable = message
                        error_type = PermanentError if kind == "permanent" else RetryableError
                        error = error_type(str(text), code=ErrorCode(str(code)))
                        return error, bool(reusable)
        except TimeoutError:
            if not deadline.expired():
                raise  # on_page's own TimeoutError: not ours to translate
            raise PermanentError(
                f"extracting the document took longer than {self._timeout:g} s",
                code=ErrorCode.TIMEOUT,
            ) from None

    async def _death(self, child: _Child) -> LexIntelError:
        """The error for a child that died in the middle of a document."""
        try:
            async with asyncio.timeout(_EXIT_GRACE_SECONDS):
                status = await child.process.wait()
        except TimeoutError:
            status = await child.stop()
        if self._closed:
            return RetryableError("extraction was interrupted: the worker is shutting down")
        if status in (MEMORY_EXIT_CODE, -signal.SIGKILL):  # SIGKILL: the kernel's OOM killer
            return PermanentError(
                f"the extraction process ran out of memory (exit status {status})",
                code=ErrorCode.TOO_LARGE,
            )
        if status == -signal.SIGXCPU:
            return PermanentError(
                f"extraction used up its CPU time (exit status {status})", code=ErrorCode.TIMEOUT
            )
        return PermanentError(
            f"the document parser crashed (exit status {status})", code=ErrorCode.PDF_CORRUPT
        )

    async def _retire(self, child: _Child, grace: float = 0.0) -> int:
        self._children.discard(child)
        return await child.stop(grace)
