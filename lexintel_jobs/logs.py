"""Structured logs: every line a job writes carries its document id, job id and try."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger("lexintel.jobs")

_document_id: ContextVar[str] = ContextVar("document_id", default="-")
_job_id: ContextVar[str] = ContextVar("job_id", default="-")
_job_try: ContextVar[str] = ContextVar("job_try", default="-")

LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s document=%(document_id)s job=%(job_id)s "
    "try=%(job_try)s %(message)s"
)


class JobContextFilter(logging.Filter):
    """Adds the current job's identifiers to each record (set per asyncio task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.document_id = _document_id.get()
        record.job_id = _job_id.get()
        record.job_try = _job_try.get()
        return True


class HideJobArguments(logging.Filter):
    """arq logs each job's start with its arguments at INFO ("0.01s → 7f3a:document.process(
    {'document_id': ...})"): the name and the job id stay, the arguments go."""

    START = "%6.2fs → %s(%s)%s"  # arq.worker's format for a job's start

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.START and isinstance(record.args, tuple) and len(record.args) == 4:
            waited, ref, _, extra = record.args
            record.args = (waited, ref, "…", extra)
        return True


@contextmanager
def job_log_context(*, document_id: object, job_id: str, job_try: int) -> Iterator[None]:
    tokens = (
        _document_id.set(str(document_id)),
        _job_id.set(job_id),
        _job_try.set(str(job_try)),
    )
    try:
        yield
    finally:
        _job_try.reset(tokens[2])
        _job_id.reset(tokens[1])
        _document_id.reset(tokens[0])


def configure_logging(level: int = logging.INFO) -> None:
    """Give the `lexintel` loggers a handler of their own (arq configures only its logger);
    keep job arguments out of arq's lines."""
    arq = logging.getLogger("arq.worker")
    if not any(isinstance(f, HideJobArguments) for f in arq.filters):
        arq.addFilter(HideJobArguments())
    root = logging.getLogger("lexintel")
    if any(isinstance(f, JobContextFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(JobContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
