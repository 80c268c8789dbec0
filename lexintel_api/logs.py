"""The API's own log lines (the progress hub, guards, GraphQL, SSE) with time, level and name.

uvicorn's logging configuration covers its own loggers only. Without a handler of their own,
the `lexintel_api`, `lexintel.api` and `lexintel_core` loggers would fall through to Python's
last-resort handler: bare messages on stderr, warnings and errors only. A deployment that configures
logging itself (handlers on the root logger or on these loggers: `uvicorn --log-config`, an
embedding application) keeps its configuration.
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOGGERS = ("lexintel_api", "lexintel.api", "lexintel_core")


def configure_logging(level: int = logging.INFO) -> None:
    if logging.getLogger().handlers:
        return
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            continue
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(level)
