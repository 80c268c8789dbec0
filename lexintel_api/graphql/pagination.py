"""Relay-style connections with opaque keyset cursors (no OFFSET scans on deep pages)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry

from lexintel_core.errors import InvalidInput

MAX_PAGE_SIZE = 100

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")
KeyT = TypeVar("KeyT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput(f"`first` must be between 1 and {MAX_PAGE_SIZE}")
    return first


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str | None, parse: Callable[[list[Any]], KeyT]) -> KeyT | None:
    """The key in `cursor`, read by `parse`; InvalidInput for anything we did not issue."""
    if cursor is None:
        return None
    try:
        return parse(json.loads(base64.urlsafe_b64decode(cursor.encode())))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise InvalidInput("`after` is not a cursor this API returned") from exc


def created_key(key: list[Any]) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) key of a newest-first list's cursor."""
    return datetime.fromisoformat(key[0]), uuid.UUID(key[1])


def connection(
    rows: Sequence[RowT],
    first: int,
    key: Callable[[RowT], Sequence[Any]],
    node: Callable[[RowT], NodeT],
) -> Connection[NodeT]:
    """A page from `rows` fetched with limit first + 1 (the extra row says there is more)."""
    page = rows[:first]
    edges = [Edge(cursor=encode_cursor(key(row)), node=node(row)) for row in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
        ),
    )
