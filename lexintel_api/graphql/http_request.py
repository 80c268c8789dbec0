"""The shape a GraphQL request over HTTP must have before Strawberry sees it: a UTF-8 JSON
object (GraphQL over HTTP), or a GraphQL multipart request
(https://github.com/jaydenseric/graphql-multipart-request-spec). Anything else is a
`BadRequest`: HTTP 400 with the code INVALID_INPUT and a message saying what is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cross_web import HTTPException
from starlette.datastructures import UploadFile
from strawberry.http import GraphQLRequestData, GraphQLRequestProtocol

MULTIPART_SPEC = "GraphQL multipart request"


class BadRequest(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def decode_json(data: str | bytes) -> object:
    """`json.loads`, except that every malformed input raises `JSONDecodeError`: bytes
    that are not UTF-8, a number too long for `int()` (ValueError), nesting too deep for
    the parser (RecursionError). Strawberry answers only that one with a 400."""
    text = ""
    try:
        text = data.decode() if isinstance(data, bytes) else data
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("not UTF-8", "", exc.start) from exc
    except (ValueError, RecursionError) as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from exc


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "a file"


def operation_of(
    data: Mapping[str, object], protocol: GraphQLRequestProtocol
) -> GraphQLRequestData:
    """One operation from a decoded JSON request body."""
    query, variables = data.get("query"), data.get("variables")
    operation_name, extensions = data.get("operationName"), data.get("extensions")
    for name, value, wanted in (
        ("query", query, str),
        ("variables", variables, dict),
        ("operationName", operation_name, str),
        ("extensions", extensions, dict),
    ):
        if value is not None and not isinstance(value, wanted):
            expected = "a string" if wanted is str else "an object"
            raise BadRequest(f"`{name}` must be {expected} or null, not {_kind(value)}")
    return GraphQLRequestData(
        query=query if isinstance(query, str) else None,
        variables=variables if isinstance(variables, dict) else None,
        operation_name=operation_name if isinstance(operation_name, str) else None,
        extensions=extensions if isinstance(extensions, dict) else None,
        protocol=protocol,
    )


def _json_field(form: Mapping[str, object], name: str) -> object:
    value = form.get(name)
    if value is None:
        raise BadRequest(f"the `{name}` field is missing: a {MULTIPART_SPEC} needs one")
    if not isinstance(value, str):
        raise BadRequest(f"the `{name}` field must be JSON text, not a file")
    try:
        return decode_json(value)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the `{name}` field is not valid JSON: {exc.msg}") from exc


def _slot(container: object, key: str, path: str, walked: str) -> tuple[Any, str | int]:
    """The container and the key (dict) or index (list, ASCII digits) that `key` names."""
    if isinstance(container, dict):
        if key in container:
            return container, key
        reason = f"`{key}` is not in `operations`"
    elif isinstance(container, list):
        if key.isascii() and key.isdigit() and int(key) < len(container):
            return container, int(key)
        reason = f"`{key}` is not an index of a list of {len(container)}"
    else:
        reason = f"runs through {_kind(container)} at `{walked}`"
    raise BadRequest(f"the `map` path `{path}`: {reason}")


def _place(operations: dict[str, Any] | list[Any], path: str, upload: UploadFile) -> None:
    """Put `upload` where `path` points: a null placeholder inside an operation's
    `variables`."""
    keys = path.split(".")
    head = ["variables"] if isinstance(operations, dict) else [keys[0], "variables"]
    if keys[: len(head)] != head or len(keys) == len(head):
        where = "variables" if isinstance(operations, dict) else "<index>.variables"
        raise BadRequest(f"the `map` path `{path}` must point inside `{where}`")
    container: object = operations
    for depth, key in enumerate(keys[:-1]):
        parent, slot = _slot(container, key, path, ".".join(keys[:depth]))
        container = parent[slot]
    parent, slot = _slot(container, keys[-1], path, ".".join(keys[:-1]))
    if parent[slot] is not None:
        raise BadRequest(
            f"the `map` path `{path}` must point at a null placeholder, not {_kind(parent[slot])}"
        )
    parent[slot] = upload


def operations_with_files(form: Mapping[str, object]) -> dict[str, Any] | list[Any]:
    """The `operations` of a GraphQL multipart request, each file put where `map` says."""
    operations = _json_field(form, "operations")
    if not isinstance(operations, dict | list):
        raise BadRequest(
            f"the `operations` field must be a JSON object (or a list of them), "
            f"not {_kind(operations)}"
        )
    files_map = _json_field(form, "map")
    if not isinstance(files_map, dict):
        raise BadRequest(
            "the `map` field must be a JSON object from file field names to lists of "
            f'paths, such as {{"0": ["variables.file"]}}, not {_kind(files_map)}'
        )
    for name, paths in files_map.items():
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise BadRequest(
                f"the `map` entry `{name}` must be a non-empty list of paths such as "
                '"variables.file"'
            )
        upload = form.get(name)
        if not isinstance(upload, UploadFile):
            raise BadRequest(f"the request has no file field `{name}`, which `map` names")
        for path in paths:
            _place(operations, path, upload)
    return operations
