"""The embedded servers behind `lexintel dev` and the harness can stop and start again on the
same address, keeping their data (fault tests rely on this)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from lexintel_core.embedded_servers import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    free_port,
    redis_server_binary,
    wait_for_port,
)


def test_embedded_redis_restarts_on_the_same_port_and_keeps_data(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=True)
    server.start()
    try:
        with Redis.from_url(server.url()) as client:
            client.set("case", "Doe v. Roe")
        server.stop()
        assert not server.is_running
        server.start()
        with Redis.from_url(server.url()) as client:
            assert client.get("case") == b"Doe v. Roe"
    finally:
        server.stop()


def test_redis_binary_is_found() -> None:
    assert redis_server_binary().exists()


def test_waiting_for_a_closed_port_times_out() -> None:
    with pytest.raises(EmbeddedServerError, match="nothing listens"):
        wait_for_port("127.0.0.1", free_port(), timeout=0.2)


def test_embedded_postgres_restarts_on_the_same_port_and_keeps_data(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", port=free_port(), durable=False)
    server.start()
    try:
        server.start()  # already running: a no-op
        server.create_database("kept_case_files")
        server.stop()
        assert not server.is_running
        server.start()
        assert server.is_running
        names = server.psql("SELECT datname FROM pg_database").split()
        assert "kept_case_files" in names
        with pytest.raises(ValueError, match="letters, digits and underscores"):
            server.create_database('x"; DROP DATABASE postgres; --')
    finally:
        server.stop(mode="immediate")
