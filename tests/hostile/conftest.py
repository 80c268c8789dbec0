"""Hostile uploads go through the real API and a real worker (fixtures of tests/api)."""

from __future__ import annotations

import pytest

from lexintel_core.settings import Settings
from tests.api.conftest import api, tenant, worker  # noqa: F401 - fixtures used here


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "embedding_provider": "hashing",
            "max_upload_bytes": 8 * 1024 * 1024,
            "retry_delays_seconds": [0.2],
            "retry_jitter": 0.0,
            "extract_timeout_seconds": 20.0,
            "extract_memory_limit_mb": 512,
        }
    )
