"""Frames between the worker and its extraction children: an 8-byte length, then a pickle.

Pickle is safe here because both ends are our own processes, started by us, talking over
pipes nobody else holds.
"""

from __future__ import annotations

import pickle
import struct
from typing import BinaryIO

HEADER = struct.Struct("!Q")

# Exit status of a child that ran out of memory so hard it could not even report it.
MEMORY_EXIT_CODE = 86

# Messages, child to parent:
#   ("ready",)                                        after start-up, before the first job
#   ("event", Reading | OcrStarted | PageDone)        as pages are read (pages.py)
#   ("ok", content_type, engine, page_count, reusable)  the document is done
#   ("error", kind, code, message, reusable)          kind "permanent" or "retryable"
# Parent to child: (path, pdf_engine, timeout_seconds, PagePlan) per document; EOF ends it.


def encode(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def read_frame(stream: BinaryIO) -> object | None:
    """One message from a blocking stream; None at EOF."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    message: object = pickle.loads(data)  # noqa: S301 - our own parent process wrote it
    return message
