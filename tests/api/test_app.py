"""Process-wide start-up options of the API."""

from __future__ import annotations

import gc

from lexintel_core.settings import Settings
from tests.api.conftest import serve


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
