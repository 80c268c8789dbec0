"""Fuzzing the API edge: operations generated from the live schema (hypothesis-graphql), valid
and invalid, and hostile strings in every kind of argument, against the real app. The
property: no HTTP 5xx, no INTERNAL_SERVER_ERROR, and the server keeps answering.

Bounded for CI (FUZZ_EXAMPLES examples per test); `LEXINTEL_FUZZ_EXAMPLES=2000` runs longer
(docs/RELIABILITY.md has the figure of such a run)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lexintel_api.graphql.schema import create_schema
from lexintel_core.settings import Settings
from tests.api.conftest import WS_PROTOCOLS, Api, Tenant, create_case, execute, upload

FUZZ_EXAMPLES = int(os.environ.get("LEXINTEL_FUZZ_EXAMPLES", "60"))
_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize="LEXINTEL_FUZZ_EXAMPLES" not in os.environ,  # CI: the same cases each run
    suppress_health_check=list(HealthCheck),
)

# Strings that broke, or break, servers: NUL, lone surrogates, bidi and zero-width marks,
# byte-order marks, format strings, SQL, a megabyte.
HOSTILE = st.one_of(
    st.text(),
    st.sampled_from(
        [
            "\x00",
            "Doe\x00 v. Roe",
            "\ud800",
            "x\udfff",
            "\u202eevil\u202c",
            "\u200b\u200d\ufeff",
            "%s%n%x",
            "'; DROP TABLE cases; --",
            "\x1b[31m",
            "a" * 1_000_000,
            "²",
            "-1",
            "0" * 400,
        ]
    ),
)
SCALARS = {
    "UUID": st.one_of(st.uuids().map(str), HOSTILE).map(nodes.String),
    "DateTime": st.one_of(st.datetimes().map(lambda d: d.isoformat()), HOSTILE).map(nodes.String),
    "Upload": st.just(nodes.Null),
}


def _schema(api_settings: Settings) -> str:
    return str(create_schema(api_settings))


def _codes(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return [
        str((error.get("extensions") or {}).get("code"))
        for error in errors or []
        if isinstance(error, dict)
    ]


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    try:
        body = response.json()
    except ValueError:
        body = None
    assert "INTERNAL_SERVER_ERROR" not in _codes(body), response.text[:500]


async def _fuzz(
    api: Api, key: str, strategy: Any, send: Callable[[httpx.Client, Any], Any]
) -> None:
    """Runs the Hypothesis test in a thread (its client is synchronous) while this event loop
    serves the app."""

    @_SETTINGS
    @given(strategy)
    def property_holds(example: Any) -> None:
        with httpx.Client(base_url=api.url, timeout=60, headers=_headers(key)) as client:
            _check(send(client, example))

    await asyncio.to_thread(property_holds)
    async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=_headers(key)) as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}  # still answering


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "GraphQL-Require-Preflight": "1"}


def _post_json(client: httpx.Client, payload: dict[str, Any]) -> httpx.Response:
    # json.dumps escapes what UTF-8 cannot carry (lone surrogates: "\\ud800"), as clients do.
    body = json.dumps(payload).encode()
    return client.post("/graphql", content=body, headers={"Content-Type": "application/json"})


def _post_query(client: httpx.Client, query: Any) -> httpx.Response:
    return _post_json(client, {"query": query})


async def test_valid_operations_from_the_schema_never_fail_inside(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    await create_case(api, acme.key)
    operations = from_schema(_schema(api_settings), custom_scalars=SCALARS)  # and mutations
    await _fuzz(api, acme.key, operations, _post_query)


async def test_invalid_operations_from_the_schema_are_refused_with_a_code(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    strategy = from_schema(_schema(api_settings), custom_scalars=SCALARS, mode=Mode.NEGATIVE)
    await _fuzz(api, acme.key, strategy, _post_query)


# Every argument kind a client can fill from variables, with hostile values.
_VARIABLE_OPERATIONS = [
    "mutation($s: String!) { createCase(name: $s, reference: $s) { id } }",
    "query($s: String!) { search(query: $s) { chunkId } }",
    "query($s: String!) { search(query: $s, mode: KEYWORD) { chunkId } }",
    "query($s: UUID!) { document(id: $s) { id } }",
    "query($s: UUID!) { case(id: $s) { id } }",
    "mutation($s: UUID!) { createProgressStream(documentId: $s) { url } }",
    "query($s: String!) { cases(first: 5, after: $s) { nodes { id } } }",
]


async def test_hostile_strings_in_variables_are_refused_or_answered(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    examples = st.tuples(st.sampled_from(_VARIABLE_OPERATIONS), HOSTILE)

    def send(client: httpx.Client, example: tuple[str, str]) -> httpx.Response:
        query, value = example
        return _post_json(client, {"query": query, "variables": {"s": value}})

    await _fuzz(api, acme.key, examples, send)


async def test_raw_http_bodies_and_headers_never_fail_inside(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    content_types = st.sampled_from(
        [
            "application/json",
            "application/graphql-response+json",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/x-www-form-urlencoded",
        ]
    )
    accepts = st.sampled_from(
        [
            "application/json",
            "text/event-stream",
            'multipart/mixed;subscriptionSpec="1.0"',
            "*/*",
            "text/html",
        ]
    )
    examples = st.tuples(st.binary(max_size=2000), content_types, accepts)

    def send(client: httpx.Client, example: tuple[bytes, str, str]) -> httpx.Response:
        body, content_type, accept = example
        headers = {"Content-Type": content_type, "Accept": accept}
        return client.post("/graphql", content=body, headers=headers)

    await _fuzz(api, acme.key, examples, send)


# graphql-transport-ws messages, well formed or not, after a valid connection_init or none.
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), HOSTILE),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
_MESSAGES = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["subscribe", "complete", "ping", "pong", "next", "error"]),
            "id": st.one_of(st.text(max_size=5), st.integers(), st.none()),
            "payload": st.one_of(
                _JSON,
                st.fixed_dictionaries(
                    {"query": st.one_of(st.sampled_from(_VARIABLE_OPERATIONS), HOSTILE)},
                    optional={"variables": st.dictionaries(st.just("s"), HOSTILE)},
                ),
            ),
        }
    ).map(json.dumps),
    _JSON.map(json.dumps),
    st.text(max_size=200),
)
# Close codes a client may get: normal ends and the protocol's own 44xx refusals; never 1011
# (an error inside the server) or a 45xx.
_CLIENT_CLOSE_CODES = {1000, 1001, 1005} | set(range(4400, 4500))


async def test_websocket_messages_never_fail_inside(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    examples = st.tuples(st.booleans(), st.lists(_MESSAGES, min_size=1, max_size=4))

    def send(_client: httpx.Client, example: tuple[bool, list[str]]) -> httpx.Response:
        initialised, messages = example
        received: list[str | bytes] = []
        closed_with: int | None = None
        with connect(api.ws_url, subprotocols=WS_PROTOCOLS, open_timeout=10) as ws:
            if initialised:
                init = {
                    "type": "connection_init",
                    "payload": {"authorization": f"Bearer {acme.key}"},
                }
                ws.send(json.dumps(init))
            try:
                for message in messages:
                    ws.send(message)
                while True:
                    received.append(ws.recv(timeout=0.3))
            except TimeoutError:
                pass  # the socket is open and quiet: the server took the messages
            except ConnectionClosed as closed:
                closed_with = closed.rcvd.code if closed.rcvd is not None else 1006
        assert closed_with is None or closed_with in _CLIENT_CLOSE_CODES, (closed_with, received)
        assert not any("INTERNAL_SERVER_ERROR" in str(message) for message in received), received
        return httpx.Response(200)

    await _fuzz(api, acme.key, examples, send)


def _escape(text: str) -> str:
    """Percent-encoded UTF-8, lone surrogates too (as the invalid bytes a raw client sends);
    at most 2,000 characters, so that the URL stays one a client can send."""
    return quote(text[:2000].encode("utf-8", "surrogatepass"), safe="")


async def test_sse_stream_requests_never_fail_inside(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, b"Plain text notes.", "notes.txt")
    stream = "mutation($id: UUID!) { createProgressStream(documentId: $id) { url token } }"
    issued = (await execute(api, acme.key, stream, id=document_id))["createProgressStream"]
    ids = st.one_of(st.just(document_id), st.uuids().map(str), HOSTILE)
    digit_likes = st.sampled_from(["²", "٣", "١٢", "-1", "1.0", " 1", "1e3", "0x1"])
    tokens = st.one_of(st.just(issued["token"]), st.none(), HOSTILE)
    # A header value is Latin-1 bytes without control characters on the wire (HTTP itself
    # refuses the rest); the query parameter takes any text.
    positions = st.one_of(st.none(), st.integers(-5, 10**20).map(str), digit_likes, HOSTILE)
    latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    header_positions = st.one_of(st.none(), st.text(alphabet=latin1, max_size=30))
    examples = st.tuples(ids, tokens, positions, header_positions)

    def send(
        client: httpx.Client, example: tuple[str, str | None, str | None, str | None]
    ) -> httpx.Response:
        document, token, position, header = example
        query = "&".join(
            f"{name}={_escape(value)}"
            for name, value in (("token", token), ("lastEventId", position))
            if value is not None
        )
        header = header.strip() if header is not None else ""
        headers = {b"Last-Event-ID": header.encode("latin-1")} if header else {}
        url = f"/api/documents/{_escape(document)}/progress?{query}"
        with client.stream("GET", url, headers=headers, timeout=10) as response:
            if response.status_code != 200:
                response.read()
                return response
            # A live stream (the document is still QUEUED): its start is what is checked.
            assert response.headers["content-type"].startswith("text/event-stream")
            return httpx.Response(200)

    await _fuzz(api, acme.key, examples, send)
