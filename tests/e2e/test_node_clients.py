"""Node clients against the real API: the `graphql-http` server audits (the GraphQL over HTTP
spec's MUSTs and SHOULDs) and a `graphql-ws` subscriber. Their npm packages are pinned in
tests/node/package-lock.json and installed by scripts/_env (`npm ci --prefix tests/node`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from arq.worker import Worker

from tests.api.conftest import Api, Tenant, create_case, upload
from tests.tools import require_binary, unavailable

NODE_CLIENTS = Path(__file__).resolve().parents[1] / "node"


async def _node(script: str, *arguments: str) -> list[dict[str, Any]]:
    node = require_binary("node", package="nodejs npm")
    if not (NODE_CLIENTS / "node_modules" / "graphql-http").is_dir():
        unavailable(
            f"needs the Node clients: npm ci --prefix {NODE_CLIENTS} (scripts/_env runs it)"
        )
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_CLIENTS / script),
        *arguments,
        cwd=NODE_CLIENTS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode()
    assert process.returncode == 0, text
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_the_graphql_over_http_audits_all_pass(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    audits = await _node("audit.mjs", api.graphql_url, acme.key)
    assert len(audits) == 61
    failed = [audit for audit in audits if audit["status"] != "ok"]
    assert failed == []  # every MUST and every SHOULD


async def test_a_graphql_ws_client_follows_a_document_to_ready(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, b"Plain text notes.", "notes.txt")
    events = await _node("subscribe.mjs", api.ws_url, acme.key, document_id)
    statuses = [event["data"]["documentProgress"]["status"] for event in events]
    assert statuses[-1] == "READY", events
    seqs = [event["data"]["documentProgress"]["seq"] for event in events]
    assert seqs == sorted(set(seqs))
