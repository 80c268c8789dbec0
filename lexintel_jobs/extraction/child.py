"""The extraction child: a fresh interpreter (never a fork of the worker, which may hold
torch and threads) that takes documents from stdin, one at a time, and answers on stdout.

It caps its own address space (RLIMIT_AS) so a pathological file ends in MemoryError here
instead of eating the machine, and its CPU time per document (RLIMIT_CPU) so that it cannot
run on for long if the worker dies without killing it.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import BinaryIO, cast

from lexintel_core.errors import FailureCode, PermanentError
from lexintel_jobs.extraction.extract import stream_file
from lexintel_jobs.extraction.pages import Event, OcrStarted
from lexintel_jobs.extraction.pdf import PagePlan
from lexintel_jobs.extraction.protocol import MEMORY_EXIT_CODE, encode, read_frame

# A child is retired after a document once its address space has grown past this share of
# the limit: fragmentation left by one big document must not fail the next one.
_RETIRE_AT = 0.5
_CPU_SLACK_SECONDS = 5


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def _set_soft_limit(kind: int, soft: int, *, lock: bool = False) -> None:
    """Set a soft limit, capped by any hard limit already set (a container's); `lock` makes
    it the hard limit too, so nothing in this process can lift it again."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, soft if lock else hard))


def _limit_cpu(timeout_seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _set_soft_limit(resource.RLIMIT_CPU, int(used + timeout_seconds) + _CPU_SLACK_SECONDS)


def _raise_cpu_limit(seconds: float) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_CPU)
    if soft != resource.RLIM_INFINITY:
        _set_soft_limit(resource.RLIMIT_CPU, soft + int(seconds))


def _answer(
    job: tuple[str, str, float, PagePlan], memory_limit: int, send: BinaryIO
) -> tuple[tuple[object, ...], bool]:
    """(the message for the parent, less its `reusable` flag; whether this process is sound)."""
    path, engine, timeout_seconds, plan = job

    def emit(event: Event) -> None:
        if isinstance(event, OcrStarted):
            # Rendering a page costs this process CPU time too: OCR'd pages extend its budget
            # as they extend the parent's time limit.
            _raise_cpu_limit(plan.ocr.page_timeout_seconds)
        send.write(encode(("event", event)))
        send.flush()

    try:
        content_type, used, total = stream_file(
            Path(path), pdf_engine=engine, plan=plan, timeout_seconds=timeout_seconds, emit=emit
        )
    except PermanentError as error:
        return ("error", "permanent", error.code.value, error.message), True
    except MemoryError:
        limit = f"{memory_limit // (1024 * 1024)} MB"
        message = f"the document needs more memory than extraction may use ({limit})"
        return ("error", "permanent", FailureCode.TOO_LARGE.value, message), False
    except OSError as error:
        if error.errno == errno.ENOMEM:  # a failed mmap, the same thing as MemoryError
            return ("error", "permanent", FailureCode.TOO_LARGE.value, str(error)), False
        message = f"reading the document failed: {error}"
        return ("error", "retryable", FailureCode.TRANSIENT.value, message), True
    except Exception as error:
        # A parser failure nobody mapped: the same bytes would fail again, so no retry.
        traceback.print_exc()
        message = f"the document could not be read ({type(error).__name__}: {error})"[:300]
        return ("error", "permanent", FailureCode.UNSUPPORTED_TYPE.value, message), True
    return ("ok", content_type, used, total), True


def serve(memory_limit_mb: int) -> None:
    # Ctrl-C reaches the whole process group; the worker decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; stray prints of any library go to stderr.
    send = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    receive = sys.stdin.buffer
    memory_limit = memory_limit_mb * 1024 * 1024
    _set_soft_limit(resource.RLIMIT_AS, memory_limit, lock=True)
    try:
        send.write(encode(("ready",)))
        send.flush()
        while (job := read_frame(receive)) is not None:
            document = cast(tuple[str, str, float, PagePlan], job)
            _limit_cpu(document[2])
            message, sound = _answer(document, memory_limit, send)
            reusable = sound and _address_space_bytes() < _RETIRE_AT * memory_limit
            send.write(encode((*message, reusable)))
            send.flush()
            if not reusable:
                break
    except MemoryError:
        os._exit(MEMORY_EXIT_CODE)
    except BrokenPipeError:
        pass  # the worker went away or dropped the job; nothing left to tell
