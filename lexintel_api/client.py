"""A GraphQL client of the LexIntel API, for the CLI (`lexintel ingest`, `search`, `status`).

It talks to the API like any other client: HTTP for queries and multipart uploads, one
`graphql-transport-ws` WebSocket for progress subscriptions.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.file_upload import FileVar
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

TERMINAL = frozenset({"READY", "FAILED", "CANCELLED"})


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


class ApiClient:
    def __init__(self, url: str, key: str) -> None:
        base = url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}", "GraphQL-Require-Preflight": "1"}
        self._http = Client(
            transport=HTTPXAsyncTransport(url=f"{base}/graphql", headers=headers, timeout=300)
        )
        ws_url = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self._ws = Client(
            transport=WebsocketsTransport(
                url=f"{ws_url}/graphql",
                init_payload={"authorization": f"Bearer {key}"},
                subprotocols=["graphql-transport-ws"],
            )
        )
        self._http_session: AsyncClientSession | None = None
        self._ws_session: AsyncClientSession | None = None
        self._ws_lock = asyncio.Lock()

    async def __aenter__(self) -> ApiClient:
        self._http_session = await self._http.connect_async()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._ws_session is not None:
            await self._ws.close_async()  # type: ignore[no-untyped-call]
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def execute(self, query: str, *, upload: bool = False, **variables: Any) -> Any:
        assert self._http_session is not None, "use `async with ApiClient(...)`"
        try:
            return await self._http_session.execute(
                GraphQLRequest(query, variable_values=variables), upload_files=upload
            )
        except TransportQueryError as exc:
            raise _api_error(exc) from exc

    async def subscribe(self, query: str, **variables: Any) -> AsyncIterator[dict[str, Any]]:
        async with self._ws_lock:  # one WebSocket carries every subscription
            if self._ws_session is None:
                self._ws_session = await self._ws.connect_async()  # type: ignore[no-untyped-call]
        try:
            async for result in self._ws_session.subscribe(
                GraphQLRequest(query, variable_values=variables)
            ):
                yield result
        except TransportQueryError as exc:
            raise _api_error(exc) from exc

    async def case_id(self, name: str, *, create: bool) -> str | None:
        """The id of the case called `name` (created when missing and `create`)."""
        after = None
        while True:
            page = (await self.execute(_CASES, after=after))["cases"]
            for case in page["nodes"]:
                if case["name"] == name:
                    return str(case["id"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        if not create:
            return None
        return str((await self.execute(_CREATE_CASE, name=name))["createCase"]["id"])


def _api_error(exc: TransportQueryError) -> ApiError:
    error = (exc.errors or [{}])[0]
    code = (error.get("extensions") or {}).get("code", "ERROR")
    return ApiError(str(code), str(error.get("message", exc)))


_CASES = """
query($after: String) {
  cases(first: 100, after: $after) { nodes { id name } pageInfo { hasNextPage endCursor } }
}
"""
_CREATE_CASE = "mutation($name: String!) { createCase(name: $name) { id } }"
_UPLOAD = """
mutation($caseId: UUID!, $file: Upload!) {
  uploadDocument(caseId: $caseId, file: $file) { duplicate document { id status } }
}
"""
_PROGRESS = """
subscription($id: UUID!) {
  documentProgress(documentId: $id) { seq status stage percent message errorCode errorMessage }
}
"""


def find_files(paths: Iterable[Path], patterns: list[str]) -> list[Path]:
    """Files named by `paths`, folders searched recursively; hidden files are skipped."""
    found: list[Path] = []
    for path in paths:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for candidate in candidates:
            if not candidate.is_file() or any(
                part.startswith(".") for part in candidate.relative_to(path.parent).parts
            ):
                continue
            if patterns and not any(fnmatch.fnmatch(candidate.name, p) for p in patterns):
                continue
            found.append(candidate)
    return found


_ENDED = frozenset({"READY", "FAILED", "CANCELLED"})
# Each stage's share of a document's bar: events give a stage's own percent (0-100).
_STAGE_SPAN = {"QUEUED": (0, 0), "EXTRACT": (0, 70), "CHUNK": (70, 75), "EMBED": (75, 100)}


def overall_percent(stage: str, percent: float) -> float:
    """A document's progress over all stages, 0-100, from one event's stage and percent:
    extraction (per page) fills the bar to 70 %, chunking to 75 %, embedding (per batch) to
    100 %."""
    start, end = _STAGE_SPAN.get(stage.upper(), (100, 100))
    return start + (end - start) * min(max(percent, 0.0), 100.0) / 100


@dataclass
class Outcome:
    path: Path
    document_id: str | None = None
    status: str = "QUEUED"
    duplicate: bool = False
    error_code: str | None = None
    message: str = ""
    events: int = field(default=0, repr=False)

    @property
    def failed(self) -> bool:
        return self.status != "READY"


async def _upload_all(client: ApiClient, case_id: str, files: list[Path]) -> list[Outcome]:
    outcomes = []
    for path in files:
        outcome = Outcome(path)
        try:
            data = await client.execute(
                _UPLOAD,
                upload=True,
                caseId=case_id,
                file=FileVar(str(path), filename=path.name),
            )
        except ApiError as exc:
            outcome.status, outcome.error_code, outcome.message = "REJECTED", exc.code, exc.message
        else:
            upload = data["uploadDocument"]
            outcome.document_id = str(upload["document"]["id"])
            outcome.duplicate = bool(upload["duplicate"])
            outcome.status = str(upload["document"]["status"])
        outcomes.append(outcome)
    return outcomes


async def _follow(client: ApiClient, outcome: Outcome, progress: Progress, task: TaskID) -> None:
    """Drive one progress bar from the document's `documentProgress` subscription."""
    assert outcome.document_id is not None
    async for result in client.subscribe(_PROGRESS, id=outcome.document_id):
        event = result["documentProgress"]
        outcome.events += 1
        outcome.status = str(event["status"])
        outcome.error_code = event.get("errorCode")
        outcome.message = str(event.get("errorMessage") or event.get("message") or "")
        if outcome.failed and outcome.status in _ENDED:
            # A failed document keeps its bar where it stopped, and says why in red.
            state = f"[red]{outcome.status.lower()}: {outcome.error_code or ''}[/red]"
            progress.update(task, state=state)
            continue
        state = f"{outcome.status.lower()} {str(event['stage']).lower()}"
        if event.get("message") and outcome.status not in _ENDED:
            state = f"{state}: {event['message']}"  # "OCR page 3 of 19"
        completed = overall_percent(str(event["stage"]), float(event["percent"]))
        progress.update(task, completed=completed, state=state)


async def ingest(
    client: ApiClient, paths: list[Path], case_name: str, patterns: list[str], console: Console
) -> list[Outcome]:
    files = find_files(paths, patterns)
    if not files:
        console.print("[yellow]no files to ingest[/yellow]")
        return []
    case_id = await client.case_id(case_name, create=True)
    assert case_id is not None
    console.print(f"uploading {len(files)} file(s) into case [bold]{case_name}[/bold]...")
    outcomes = await _upload_all(client, case_id, files)
    followed = [outcome for outcome in outcomes if outcome.document_id is not None]
    with Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[state]}"),
        console=console,
    ) as progress:
        tasks = [
            progress.add_task(outcome.path.name, total=100.0, state="queued")
            for outcome in followed
        ]
        await asyncio.gather(
            *(_follow(client, o, progress, t) for o, t in zip(followed, tasks, strict=True))
        )
    console.print(summary(outcomes))
    return outcomes


def summary(outcomes: list[Outcome]) -> Table:
    table = Table(title="Ingest summary")
    for column in ("file", "result", "error or warning", "document"):
        table.add_column(column)
    for outcome in outcomes:
        result = "DUPLICATE" if outcome.duplicate else outcome.status
        style = "green" if not outcome.failed else "red"
        error = f"{outcome.error_code}: {outcome.message}" if outcome.error_code else ""
        if outcome.status == "READY" and outcome.message not in ("", "ready"):
            # A READY document's last message is its warning: pages left without text.
            style, error = "yellow", outcome.message
        table.add_row(
            outcome.path.name, f"[{style}]{result}[/{style}]", error, outcome.document_id or ""
        )
    return table
