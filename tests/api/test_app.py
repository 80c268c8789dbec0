"""Process-wide start-up options of the API."""

from __future__ import annotations

import gc

from lexintel_core.settings import Settings
from tests.api.conftest import serve


async def test_gc_freeze_moves_the_start_up_objects_out_of_the_collectors_way(
    api_settings: Settings,
) -> None:
    gc.unfreeze()
    try:
        async with serve(api_settings.model_copy(update={"api_gc_freeze": False})):
            assert gc.get_freeze_count() == 0
        async with serve(api_settings.model_copy(update={"api_gc_freeze": True})):
            # Everything loaded so far, the app and its services included.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
