# Strawberry's relay types bind their node type to relay.Node; ours are not (see NodeType).
# mypy: disable-error-code="type-var"
"""Relay connections (`strawberry.relay`) with opaque keyset cursors (no OFFSET scans on deep
pages) and the list's `totalCount`, counted only when asked for."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from sqlalchemy import Select, func, select, tuple_
from strawberry import relay

from lexintel_core.db import SessionFactory
from lexintel_core.errors import InvalidInput

MAX_PAGE_SIZE = 100

NodeT = TypeVar("NodeT")
# Strawberry's relay types bind their node type to `relay.Node` (global ids); ours keep UUID
# ids, so the connection has a type variable of its own, named like relay's: Strawberry
# resolves generic fields by the variable's name.
NodeType = TypeVar("NodeType")
RowT = TypeVar("RowT")
KeyT = TypeVar("KeyT")


@strawberry.type(description="A page of a list: its edges (or nodes) and where it sits.")
class Connection(relay.Connection[NodeType]):
    total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds, over all pages.")
    async def total_count(self) -> int:
        return await self.total()

    @strawberry.field(description="The page's nodes, without their cursors.")
    def nodes(self) -> list[NodeType]:
        return [edge.node for edge in self.edges]


def counter(sessions: SessionFactory, statement: Select[Any]) -> Callable[[], Awaitable[int]]:
    """Counts the rows of `statement` (the list's query without cursor or limit) when called."""

    async def total() -> int:
        counted = select(func.count()).select_from(statement.order_by(None).subquery())
        async with sessions() as session:
            return int(await session.scalar(counted) or 0)

    return total


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
    *,
    after: str | None,
    total: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    """A page from `rows` fetched with limit first + 1 (the extra row says there is more),
    after the cursor `after` (so there is a previous page when it is given)."""
    page = rows[:first]
    edges = [relay.Edge(cursor=encode_cursor(key(row)), node=node(row)) for row in page]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=len(rows) > first,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total=total,
    )


async def newest_first(
    sessions: SessionFactory,
    statement: Select[Any],
    model: Any,
    first: int,
    after: str | None,
    node: Callable[[Any], NodeT],
) -> Connection[NodeT]:
    """A page of the `model` rows `statement` selects, newest first: keyset (created_at, id)
    cursors, `first` of them after the cursor `after`, the list's total counted on demand."""
    size = page_size(first)
    total = counter(sessions, statement)
    key = decode_cursor(after, created_key)
    if key is not None:
        statement = statement.where(tuple_(model.created_at, model.id) < key)
    statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(size + 1)
    async with sessions() as session:
        rows = list(await session.scalars(statement))
    return connection(
        rows,
        size,
        lambda row: [row.created_at.isoformat(), str(row.id)],
        node,
        after=after,
        total=total,
    )
