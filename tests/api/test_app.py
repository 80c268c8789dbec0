"""Process-wide start-up options of the API."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
from pathlib import Path

from lexintel_core.settings import Settings
from tests.api.conftest import serve
from tests.workers import environment_without_settings


async def test_gc_tuning_freezes_the_start_up_objects_and_sets_the_thresholds(
    api_settings: Settings,
) -> None:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        python_gc = {"api_gc_freeze": False, "api_gc_threshold": thresholds}
        async with serve(api_settings.model_copy(update=python_gc)):
            assert gc.get_freeze_count() == 0
            assert gc.get_threshold() == thresholds
        async with serve(api_settings.model_copy(update={"api_gc_threshold": (5000, 20, 30)})):
            # Everything loaded so far, the app and its services included.
            assert gc.get_freeze_count() > 10_000
            assert gc.get_threshold() == (5000, 20, 30)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_api_logs_with_time_and_level_under_uvicorn(tmp_path: Path) -> None:
    # As `uvicorn lexintel_api.app:app` starts: uvicorn configures logging (its own loggers
    # only), then imports the app.
    script = (
        "import logging, uvicorn\n"
        "uvicorn.Config('lexintel_api.app:app', log_level='info')\n"
        "from lexintel_api.app import app\n"
        "logging.getLogger('lexintel_api.hub').warning('progress hub lost its connection')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment_without_settings(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING lexintel_api.hub progress hub lost"
    assert re.search(line, result.stderr, re.MULTILINE), result.stderr
