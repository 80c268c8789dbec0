from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lexintel_core.settings import Settings


def test_defaults_point_at_the_embedded_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEXINTEL_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert ":5433/" in settings.database_url
    assert settings.redis_url == "redis://127.0.0.1:6380/0"
    assert settings.resolved_blob_dir == Path(".lexintel/blobs")
    assert settings.max_tries == 4  # first try + 60/120/240 s retries


def test_environment_variables_use_the_lexintel_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEXINTEL_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("LEXINTEL_RETRY_DELAYS_SECONDS", "[1, 2]")
    monkeypatch.setenv("LEXINTEL_BLOB_BACKEND", "filesystem")
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.retry_delays_seconds == [1.0, 2.0]
    assert settings.max_tries == 3
    assert settings.blob_backend == "filesystem"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEXINTEL_EMBEDDING_DIMENSION", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("LEXINTEL_EMBEDDING_DIMENSION=768\nLEXINTEL_WORKER_CONCURRENCY=9\n")
    settings = Settings(_env_file=env_file)
    assert settings.embedding_dimension == 768
    assert settings.worker_concurrency == 9


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("chunk_overlap_tokens", 300, "chunk_overlap_tokens must be smaller"),
        ("worker_heartbeat_seconds", 60.0, "worker_heartbeat_seconds must be smaller"),
        ("retry_delays_seconds", [-1.0], "retry delays must be >= 0"),
        ("blob_backend", "s3", "Input should be 'postgres' or 'filesystem'"),
    ],
)
def test_invalid_settings_fail_with_a_clear_message(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **{field: value})
