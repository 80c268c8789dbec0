"""One rule at the edge: whatever a client sends to /graphql gets a result or a 4xx / GraphQL
error with a stable code, never HTTP 5xx or INTERNAL_SERVER_ERROR, and the server keeps
answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from strawberry.extensions import AddValidationRules, ParserCache, ValidationCache

from lexintel_api.graphql.schema import create_schema
from lexintel_core.settings import Settings
from tests.api.conftest import (
    CREATE_CASE,
    PREFLIGHT,
    UPLOAD,
    WS_PROTOCOLS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    ws_client,
)

UPLOAD_MANY = """
mutation($caseId: UUID!, $files: [Upload!]!) {
  uploadDocuments(caseId: $caseId, files: $files) { filename }
}
"""
CASE_NAMES = "{ cases(first: 100) { nodes { name reference } } }"


async def _post(api: Api, key: str, **request: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **PREFLIGHT, **request.pop("headers", {})}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        return await client.post("/graphql", headers=headers, **request)


async def _still_answers(api: Api, key: str) -> list[dict[str, Any]]:
    """The server keeps answering; the cases it holds."""
    data = await execute(api, key, CASE_NAMES)
    nodes: list[dict[str, Any]] = data["cases"]["nodes"]
    return nodes


def _refusal(response: httpx.Response) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a refused request."""
    error = response.json()["errors"][0]
    return response.status_code, error["extensions"]["code"], error["message"]


# -- strings ---------------------------------------------------------------------------

CREATE_WITH_REFERENCE = """
mutation($name: String!, $reference: String) {
  createCase(name: $name, reference: $reference) { id }
}
"""
# (body as raw JSON text, what the message must name): JSON text, so that a lone surrogate
# (which no Python str can be encoded from) can be sent as the escape a client would send.
HOSTILE_STRINGS = [
    (
        json.dumps({"query": 'mutation { createCase(name: "Doe\\u0000 v. Roe") { id } }'}),
        "argument `name` of `createCase`",
    ),
    (
        json.dumps({"query": CREATE_CASE, "variables": {"name": "Doe\u0000 v. Roe"}}),
        "variable `$name`",
    ),
    (
        json.dumps({"query": CREATE_CASE, "variables": {"name": "Doe"}}).replace(
            '"Doe"', '"Doe \\ud800 v. Roe"'
        ),
        "variable `$name`",
    ),
    (
        json.dumps({"query": 'mutation { createCase(name: "Doe", reference: "A\\u0007") { id } }'}),
        "argument `reference` of `createCase`",
    ),
    (
        json.dumps(
            {"query": CREATE_WITH_REFERENCE, "variables": {"name": "Doe", "reference": "\x1b[31m"}}
        ),
        "variable `$reference`",
    ),
    (
        json.dumps(
            {"query": 'mutation($n: String! = "Doe\\u0000") { createCase(name: $n) { id } }'}
        ),
        "default value of variable `$n`",
    ),
    (
        json.dumps(
            {
                "query": "query($words: [String!]) { cases(first: 1) { nodes { id } } }",
                "variables": {"words": ["contract", "br\u0000each"]},
            }
        ),
        "variable `$words[1]`",
    ),
    (
        json.dumps({"query": '{ search(query: "\\u0000indemnify") { chunkId } }'}),
        "argument `query`",
    ),
]


@pytest.mark.parametrize(
    ("body", "named"),
    HOSTILE_STRINGS,
    ids=[
        "NUL-in-literal",
        "NUL-in-variable",
        "lone-surrogate-in-variable",
        "BEL-in-literal",
        "ESC-in-variable",
        "NUL-in-default-value",
        "NUL-in-list-variable",
        "NUL-in-search-query",
    ],
)
async def test_control_characters_and_lone_surrogates_in_strings_are_invalid_input(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]], body: str, named: str
) -> None:
    acme = await tenant("Acme LLP")
    response = await _post(
        api, acme.key, content=body.encode(), headers={"Content-Type": "application/json"}
    )
    status, code, message = _refusal(response)
    assert (status, code) == (200, "INVALID_INPUT"), message
    assert named in message
    assert "control character" in message or "lone surrogate" in message
    assert await _still_answers(api, acme.key) == []  # nothing was stored


async def test_the_string_rule_holds_over_websocket_and_keeps_tab_and_newlines(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    async with ws_client(api, acme.key) as session:
        with pytest.raises(TransportQueryError) as refused:
            await session.execute(
                GraphQLRequest(CREATE_CASE, variable_values={"name": "Doe\u0000 v. Roe"})
            )
    assert refused.value.errors is not None
    assert refused.value.errors[0]["extensions"]["code"] == "INVALID_INPUT"
    await create_case(api, acme.key, name="Doe\tv.\r\nRoe")
    assert await _still_answers(api, acme.key) == [{"name": "Doe\tv.\r\nRoe", "reference": None}]


# -- multipart requests ----------------------------------------------------------------


def _multipart(operations: object, files_map: object) -> dict[str, str]:
    return {
        "operations": operations if isinstance(operations, str) else json.dumps(operations),
        "map": files_map if isinstance(files_map, str) else json.dumps(files_map),
    }


# (operations, map, what the message must say); the file is sent as field "0".
BAD_MULTIPART: list[tuple[object, object, str]] = [
    ("ONE", [["variables.file"]], "`map` field must be a JSON object"),
    ("ONE", '"variables.file"', "`map` field must be a JSON object"),
    ("ONE", "{not json", "`map` field is not valid JSON"),
    ("ONE", {"0": [1]}, "must be a non-empty list of paths"),
    ("ONE", {"0": "variables.file"}, "must be a non-empty list of paths"),
    ("{not json", {"0": ["variables.file"]}, "`operations` field is not valid JSON"),
    ('"mutation { x }"', {"0": ["variables.file"]}, "`operations` field must be a JSON object"),
    ("42", {"0": ["variables.file"]}, "`operations` field must be a JSON object"),
    ("null", {"0": ["variables.file"]}, "`operations` field must be a JSON object"),
    ("ONE", {"0": ["variables.caseId.x"]}, "runs through a string at `variables.caseId`"),
    ("ONE", {"0": ["variables.file.x"]}, "runs through null at `variables.file`"),
    ("ONE", {"0": ["variables.nothing"]}, "`nothing` is not in `operations`"),
    ("ONE", {"0": ["query"]}, "must point inside `variables`"),
    ("ONE", {"0": ["operationName"]}, "must point inside `variables`"),
    ("ONE", {"0": ["variables.caseId"]}, "must point at a null placeholder"),
    ("MANY", {"0": ["variables.files.x"]}, "`x` is not an index"),
    ("MANY", {"0": ["variables.files.5"]}, "`5` is not an index"),
    ("MANY", {"0": ["variables.files.-1"]}, "`-1` is not an index"),
    ("ONE", {"1": ["variables.file"]}, "no file field `1`"),
    ("ONE", {"map": ["variables.file"]}, "no file field `map`"),
]


@pytest.mark.parametrize(("operations", "files_map", "says"), BAD_MULTIPART)
async def test_multipart_requests_off_the_spec_are_a_400_with_a_code(
    api: Api,
    tenant: Callable[[str], Awaitable[Tenant]],
    operations: object,
    files_map: object,
    says: str,
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    if operations == "ONE":
        operations = {"query": UPLOAD, "variables": {"caseId": case_id, "file": None}}
    elif operations == "MANY":
        operations = {"query": UPLOAD_MANY, "variables": {"caseId": case_id, "files": [None]}}
    response = await _post(
        api,
        acme.key,
        data=_multipart(operations, files_map),
        files={"0": ("notes.txt", b"Plain text notes.", "text/plain")},
    )
    status, code, message = _refusal(response)
    assert (status, code) == (400, "INVALID_INPUT"), message
    assert says in message
    documents = await execute(api, acme.key, "{ documents(first: 10) { nodes { id } } }")
    assert documents["documents"]["nodes"] == []


async def test_a_multipart_request_on_the_spec_still_uploads(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    operations = {"query": UPLOAD_MANY, "variables": {"caseId": case_id, "files": [None, None]}}
    response = await _post(
        api,
        acme.key,
        data=_multipart(operations, {"a": ["variables.files.0"], "b": ["variables.files.1"]}),
        files={
            "a": ("a.txt", b"First notes.", "text/plain"),
            "b": ("b.txt", b"Second.", "text/plain"),
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["uploadDocuments"] == [
        {"filename": "a.txt"},
        {"filename": "b.txt"},
    ]


# -- other request shapes --------------------------------------------------------------

NESTED = "[" * 100_000 + "]" * 100_000
SUBSCRIPTION = (
    'subscription { documentProgress(documentId: "00000000-0000-0000-0000-000000000000") { seq } }'
)
# (Content-Type, body, what the message must say)
BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("application/json", b'{"query": "{ __typename }\xff"}', "not UTF-8"),
    ("application/json", b"\xff\xfe\xfd", "not UTF-8"),
    ("application/json", b"not json", "not valid JSON"),
    ("application/json", b'"{ __typename }"', "must be a JSON object"),
    ("application/json", b"42", "must be a JSON object"),
    ("application/json", b"null", "must be a JSON object"),
    ("application/json", b"[1, 2]", "Batching"),
    ("application/json", b'{"query": 42}', "`query` must be a string"),
    ("application/json", b'{"query": "{ __typename }", "variables": [1]}', "`variables` must"),
    ("application/json", b'{"query": "{ __typename }", "operationName": 1}', "`operationName`"),
    (
        "application/json",
        b'{"query": "query($n: Int!) { cases(first: $n) { nodes { id } } }", '
        b'"variables": {"n": ' + b"9" * 5000 + b"}}",
        "not valid JSON",
    ),
    (
        "application/json",
        b'{"query": "{ __typename }", "variables": {"n": ' + NESTED.encode() + b"}}",
        "not valid JSON",
    ),
    ("application/json", json.dumps({"query": SUBSCRIPTION}).encode(), "streaming transport"),
    ("text/plain", b'{"query": "{ __typename }"}', "Unsupported content type"),
    ("multipart/form-data; boundary=b", b"garbage", "multipart body cannot be parsed"),
]


@pytest.mark.parametrize(("content_type", "body", "says"), BAD_BODIES)
async def test_malformed_requests_are_a_400_with_a_code(
    api: Api,
    tenant: Callable[[str], Awaitable[Tenant]],
    content_type: str,
    body: bytes,
    says: str,
) -> None:
    acme = await tenant("Acme LLP")
    response = await _post(api, acme.key, content=body, headers={"Content-Type": content_type})
    status, code, message = _refusal(response)
    assert (status, code) == (400, "INVALID_INPUT"), message
    assert says in message
    await _still_answers(api, acme.key)


async def test_a_subscription_over_plain_get_is_a_400_naming_the_transports(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        response = await client.get(
            "/graphql",
            params={"query": SUBSCRIPTION},
            headers={"Authorization": f"Bearer {acme.key}", "Accept": "application/json"},
        )
    status, code, message = _refusal(response)
    assert (status, code) == (400, "INVALID_INPUT"), message
    assert "graphql-transport-ws" in message


async def test_a_websocket_message_with_a_number_too_long_closes_as_bad_input(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    async with websockets.connect(api.ws_url, subprotocols=WS_PROTOCOLS) as ws:
        await ws.send('{"type": "connection_init", "payload": {"n": ' + "9" * 5000 + "}}")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400  # graphql-transport-ws: invalid message
    await _still_answers(api, acme.key)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe", "id": "1", "payload": None},
        {"type": "subscribe", "id": "1", "payload": {"query": 5}},
        {"type": "subscribe", "id": 1, "payload": {"query": "{ __typename }"}},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "variables": [1]}},
        ["not", "an", "object"],
    ],
)
async def test_a_websocket_message_of_the_wrong_shape_closes_as_invalid(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]], message: object
) -> None:
    acme = await tenant("Acme LLP")
    async with websockets.connect(api.ws_url, subprotocols=WS_PROTOCOLS) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {acme.key}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps(message))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400  # graphql-transport-ws: invalid message
    await _still_answers(api, acme.key)


# -- depth -----------------------------------------------------------------------------


def _nested(levels: int) -> str:
    """A query `levels` fields deep: cases > nodes > documents > nodes > case > documents ..."""
    path = (["cases", "nodes"] + ["documents", "nodes", "case"] * levels)[: levels - 1]
    leaf = "totalCount" if path[-1] in ("cases", "documents") else "id"  # connections
    return "{ " + " { ".join([*path, leaf]) + " }" * levels


@pytest.mark.parametrize("levels", [9, 10])
async def test_the_depth_limit_admits_the_configured_levels(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]], levels: int
) -> None:
    owner = await tenant("Depth LLP")
    query = _nested(levels)
    assert query.count("{") == levels  # the test's own arithmetic
    data = await execute(api, owner.key, query)
    assert data == {"cases": {"nodes": []}}  # validated and run


async def test_one_level_more_than_configured_is_refused(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    owner = await tenant("Depth LLP")
    assert api_settings.api_max_query_depth == 10
    query = _nested(11)
    assert query.count("{") == 11
    with pytest.raises(GraphQLFailed) as failed:
        await execute(api, owner.key, query)
    [error] = failed.value.errors
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "deeper than 10 levels" in error["message"]


async def test_a_parsed_and_validated_document_is_reused_and_still_refused(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    """Operations with the same text share one parse and one validation (ParserCache,
    ValidationCache); the cached verdict still refuses every one of them, in our words."""
    owner = await tenant("Depth LLP")
    query = _nested(11) + " "  # a text no other test sends
    # functools.lru_caches around graphql-core's parse and validate, shared by every
    # ParserCache(128) and ValidationCache(128).
    parses = ParserCache().cached_parse_document.cache_info  # type: ignore[attr-defined]
    validations = ValidationCache().cached_validate_document.cache_info  # type: ignore[attr-defined]
    for _ in range(3):
        hits = parses().hits, validations().hits
        with pytest.raises(GraphQLFailed) as failed:
            await execute(api, owner.key, query)
        [error] = failed.value.errors
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert error["message"].endswith("is nested deeper than 10 levels")
    assert parses().hits > hits[0]  # the last ones from the caches
    assert validations().hits > hits[1]


async def test_a_document_over_the_token_limit_is_refused_every_time(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    owner = await tenant("Tokens LLP")
    fields = api_settings.api_max_query_tokens  # `{`, `}` and the fields: over by one
    query = "{ " + "__typename " * fields + "}"
    for _ in range(2):  # the parse of a refused document is not cached
        with pytest.raises(GraphQLFailed) as failed:
            await execute(api, owner.key, query)
        [error] = failed.value.errors
        assert f"Document contains more than {fields} tokens" in error["message"]


def test_operations_share_the_limits_rule_classes(api_settings: Settings) -> None:
    """Strawberry's limiters build a rule class per operation, which a live subscription
    keeps for its life; ours are built once per schema."""
    schema = create_schema(api_settings)

    def rules() -> list[type]:
        extensions = schema.get_extensions()  # what one operation gets
        found = [e for e in extensions if isinstance(e, AddValidationRules)]
        return [rule for extension in found for rule in extension.validation_rules]

    first = rules()
    assert len(first) == 2  # depth and aliases
    assert all(a is b for a, b in zip(first, rules(), strict=True))
