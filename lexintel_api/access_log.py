"""Stream tokens out of the server's access log.

A browser's `EventSource` cannot send headers, so its SSE stream token travels in the URL
(`/api/documents/{id}/progress?token=...`), and uvicorn's access log records every request's
URL. A filter on uvicorn's access logger replaces the token with `[redacted]` before any
handler sees the record, whatever logging configuration uvicorn (or gunicorn) was started
with.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"([?&]token=)[^&#\s]*")
REDACTED = "[redacted]"


def _redact(text: str) -> str:
    return _TOKEN.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        # uvicorn's access formatter reads the request line from the record's arguments.
        if isinstance(record.args, tuple):
            record.args = tuple(
                _redact(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


_FILTER = RedactTokens()


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once, however often it is called)."""
    logging.getLogger("uvicorn.access").addFilter(_FILTER)
