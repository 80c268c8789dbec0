"""SSE stream tokens stay out of the access log of the API started as the Dockerfile,
compose and README start it (a real uvicorn process, its real log)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from lexintel_api.auth import Principal, StreamTokens, create_api_key
from lexintel_core.db import SessionFactory
from lexintel_core.embedded_servers import free_port
from lexintel_core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "access-log-test-secret"
STARTUP_SECONDS = 60


def _shipped_commands() -> dict[str, list[str]]:
    """The API's command line in the Dockerfile (CMD), compose (api) and README."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    cmd = [line.removeprefix("CMD ") for line in dockerfile if line.startswith("CMD ")]
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    readme = (ROOT / "README.md").read_text().splitlines()
    started = [line.partition("#")[0] for line in readme if line.startswith("uvicorn ")]
    return {
        "Dockerfile": json.loads(cmd[-1]),
        "compose": shlex.split(compose["services"]["api"]["command"]),
        "README": shlex.split(started[0]),
    }


def _on(argv: list[str], port: int) -> list[str]:
    """`argv` with uvicorn from this environment, on 127.0.0.1:`port`."""
    assert argv[:2] == ["uvicorn", "lexintel_api.app:app"], argv
    rest: list[str] = []
    options = iter(argv[2:])
    for option in options:
        if option in ("--host", "--port"):
            next(options)
        else:
            rest.append(option)
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    return [uvicorn, argv[1], "--host", "127.0.0.1", "--port", str(port), *rest]


@pytest.mark.parametrize("source", ["Dockerfile", "compose", "README"])
async def test_the_access_log_records_the_request_but_not_the_stream_token(
    settings: Settings, sessions: SessionFactory, tmp_path: Path, source: str
) -> None:
    async with sessions.begin() as session:
        key, _ = await create_api_key(session, "Acme LLP")
    document_id = uuid.uuid4()
    principal = Principal(organization_id=key.organization_id, api_key_id=key.id)
    token, _ = StreamTokens(SECRET.encode(), 300).issue(principal, document_id)
    env = {
        **os.environ,
        "LEXINTEL_DATABASE_URL": settings.database_url,
        "LEXINTEL_REDIS_URL": settings.redis_url,
        "LEXINTEL_EMBEDDING_PROVIDER": "hashing",
        "LEXINTEL_API_SECRET_KEY": SECRET,
    }
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *_on(_shipped_commands()[source], port),
        cwd=tmp_path,  # no .env of the checkout
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    path = f"/api/documents/{document_id}/progress"
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
            asyncio.timeout(STARTUP_SECONDS),
        ):
            while True:
                assert process.returncode is None, "the API exited"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            response = await client.get(path, params={"token": token})
        assert response.status_code == 404  # the token is good; the document is not there
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    log = output.decode()
    assert f'"GET {path}?token=[redacted] HTTP/1.1" 404' in log, log
    assert token not in log
