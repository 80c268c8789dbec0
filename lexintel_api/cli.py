"""The `lexintel` command line."""

from __future__ import annotations

import asyncio
import html
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from arq.constants import health_check_key_suffix
from gql.transport.exceptions import TransportError, TransportServerError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select, update

from lexintel_api.auth import create_api_key
from lexintel_api.client import ApiClient, ApiError
from lexintel_api.client import ingest as run_ingest
from lexintel_api.devstack import run_dev, user_key_file, worker_command
from lexintel_core import keys, migrate, readiness
from lexintel_core.db import create_session_factory, engine_for
from lexintel_core.models import ApiKey, Organization, utcnow
from lexintel_core.settings import Settings

T = TypeVar("T")

app = typer.Typer(help="LexIntel: legal document processing and search.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
apikey_app = typer.Typer(help="API keys (bearer tokens bound to an organization).")
app.add_typer(apikey_app, name="apikey")
console = Console()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    migrate.upgrade(Settings(), revision)
    console.print(f"[green]database upgraded to {revision}[/green]")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base.")) -> None:
    """Revert migrations down to REVISION."""
    migrate.downgrade(Settings(), revision)
    console.print(f"[yellow]database downgraded to {revision}[/yellow]")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest available one."""
    settings = Settings()

    async def _current() -> str | None:
        async with engine_for(settings) as engine:
            return await migrate.current_revision(engine)

    current = asyncio.run(_current())
    head = migrate.head_revision(settings)
    state = "[green]up to date[/green]" if current == head else "[yellow]behind[/yellow]"
    console.print(f"current: {current or 'empty'}  head: {head}  {state}")


@apikey_app.command("list")
def apikey_list() -> None:
    """List API keys (prefix, organization, last use); secrets are never shown."""

    async def _list() -> list[tuple[ApiKey, str]]:
        async with engine_for(Settings()) as engine, create_session_factory(engine)() as session:
            rows = await session.execute(
                select(ApiKey, Organization.name)
                .join(Organization, Organization.id == ApiKey.organization_id)
                .order_by(ApiKey.created_at)
            )
            return [(row[0], row[1]) for row in rows]

    table = Table(title="API keys")
    for column in ("prefix", "organization", "name", "created", "last used", "state"):
        table.add_column(column)
    for key, organization in asyncio.run(_list()):
        table.add_row(
            key.prefix,
            organization,
            key.name,
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
            "active" if key.is_active else "revoked",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(prefix: str = typer.Argument(..., help="The key's prefix, as listed.")) -> None:
    """Revoke the API key with this prefix; requests with it fail from now on."""

    async def _revoke() -> int:
        async with (
            engine_for(Settings()) as engine,
            create_session_factory(engine).begin() as session,
        ):
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    if asyncio.run(_revoke()) == 0:
        console.print(f"[red]no active key with prefix {prefix}[/red]")
        raise typer.Exit(1)
    console.print(f"[yellow]revoked {prefix}[/yellow]")


@apikey_app.command("create")
def apikey_create(
    org: str = typer.Option(..., "--org", help="Organization name (created if missing)."),
    name: str = typer.Option("default", "--name", help="A label to tell keys apart."),
) -> None:
    """Create an API key and print it. It is shown once and stored only as a hash."""
    settings = Settings()

    async def _create() -> str:
        async with (
            engine_for(settings) as engine,
            create_session_factory(engine).begin() as session,
        ):
            _, secret = await create_api_key(session, org, name=name)
        return secret

    secret = asyncio.run(_create())
    console.print(f"API key for organization [bold]{org}[/bold] (shown once, keep it safe):")
    print(secret)  # plain stdout, so `KEY=$(lexintel apikey create --org X | tail -1)` works


@app.command()
def dev(
    workers: int = typer.Option(1, "--workers", min=0, help="Worker processes to run."),
    host: str = typer.Option("127.0.0.1", help="Address the API listens on."),
    port: int = typer.Option(8000, help="Port of the API."),
    db_port: int = typer.Option(5433, help="Port of the embedded PostgreSQL."),
    redis_port: int = typer.Option(6380, help="Port of the embedded Redis."),
) -> None:
    """Run the whole stack locally: embedded PostgreSQL + Redis (data under
    LEXINTEL_DATA_DIR, default ./.lexintel), migrations, a development API key, the API and
    workers. Uses LEXINTEL_DATABASE_URL / LEXINTEL_REDIS_URL instead when they are set."""
    run_dev(
        host=host,
        port=port,
        workers=workers,
        db_port=db_port,
        redis_port=redis_port,
        console=console,
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(context: typer.Context) -> None:
    """Run an arq worker (`arq lexintel_jobs.worker.WorkerSettings`); extra arguments such as
    --burst go to arq. `--check` is the probe instead: database, migrations, Redis and a live
    worker, answered within LEXINTEL_READINESS_TIMEOUT_SECONDS; exit 1 naming what failed."""
    if "--check" in context.args:
        raise typer.Exit(_check_worker())
    command = worker_command(*context.args)
    os.execv(command[0], command)  # noqa: S606 - this interpreter, fixed module


def _check_worker() -> int:
    settings = Settings()
    # The key every live worker of the queue keeps fresh (what `arq --check` reads).
    worker_key = keys.QUEUE_NAME + health_check_key_suffix

    async def _check() -> dict[str, str]:
        async with engine_for(settings) as engine:
            return await readiness.check(settings, engine, worker_key=worker_key)

    checks = asyncio.run(_check())
    for name, state in checks.items():
        style = None if state == readiness.OK else "red"
        console.print(f"{name}: {escape(state)}", style=style, soft_wrap=True)
    return 0 if readiness.is_ready(checks) else 1


# -- client commands (through the API, like any other client) -------------------------

_API_OPTION = typer.Option(
    "http://127.0.0.1:8000", "--api", envvar="LEXINTEL_API_URL", help="Base URL of the API."
)
_KEY_OPTION = typer.Option(
    None,
    "--key",
    envvar="LEXINTEL_API_KEY",
    help="API key (default: the development key `lexintel dev` saved).",
    show_default=False,
)


def _api_key(key: str | None) -> str:
    if key:
        return key
    for saved in (Settings().data_dir / "dev-api-key", user_key_file()):
        if saved.exists():
            return saved.read_text().strip()
    console.print(
        "[red]no API key: set LEXINTEL_API_KEY or pass --key (`lexintel dev` saves one)[/red]"
    )
    raise typer.Exit(2)


def _run_client(url: str, key: str | None, work: Callable[[ApiClient], Awaitable[T]]) -> T:
    async def _main() -> T:
        async with ApiClient(url, _api_key(key)) as client:
            return await work(client)

    try:
        return asyncio.run(_main())
    except ApiError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(1) from exc
    except TransportServerError as exc:
        console.print(f"[red]the API at {url} answered with an error: {_line(exc)}[/red]")
        raise typer.Exit(1) from exc
    except (OSError, httpx.TransportError, TransportError) as exc:
        console.print(
            f"[red]cannot reach the API at {url} ({_line(exc)}); is it running? "
            "(`lexintel dev` starts one; --api or LEXINTEL_API_URL names another)[/red]"
        )
        raise typer.Exit(1) from exc


def _line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error."""
    text = str(exc).strip().splitlines()
    return escape((text[0][:200] if text else "") or type(exc).__name__)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Files or folders (recursive).")],
    case: str = typer.Option(..., "--case", help="Case name (created if missing)."),
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Only files matching this glob, e.g. '*.pdf'."),
    ] = None,
    api: str = _API_OPTION,
    key: str | None = _KEY_OPTION,
) -> None:
    """Upload documents and follow each one live until it is READY or FAILED."""
    outcomes = _run_client(api, key, lambda c: run_ingest(c, paths, case, include or [], console))
    if any(outcome.failed for outcome in outcomes):
        raise typer.Exit(1)


_SEARCH = """
query($q: String!, $caseId: UUID, $mode: SearchMode!, $limit: Int!) {
  search(query: $q, caseId: $caseId, mode: $mode, limit: $limit) {
    filename pageStart pageEnd score snippet
  }
}
"""


def _rich_snippet(snippet: str) -> str:
    """The API's HTML snippet (escaped text, <mark>ed matches) as rich markup."""
    parts = re.split(r"(</?mark>)", snippet)
    styled = {"<mark>": "[bold yellow]", "</mark>": "[/bold yellow]"}
    text = "".join(styled.get(part, escape(html.unescape(part))) for part in parts)
    return " ".join(text.split())


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for."),
    case: str | None = typer.Option(None, "--case", help="Only this case."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, semantic or keyword."),
    limit: int = typer.Option(10, "--limit", min=1, max=100),
    api: str = _API_OPTION,
    key: str | None = _KEY_OPTION,
) -> None:
    """Search the READY documents; prints document, pages and the highlighted passage."""
    if mode.upper() not in ("HYBRID", "SEMANTIC", "KEYWORD"):
        raise typer.BadParameter("choose hybrid, semantic or keyword", param_hint="--mode")

    async def _search(client: ApiClient) -> list[dict[str, Any]]:
        case_id = await client.case_id(case, create=False) if case else None
        if case and case_id is None:
            raise ApiError("NOT_FOUND", f"there is no case named {case!r}")
        data = await client.execute(
            _SEARCH, q=query, caseId=case_id, mode=mode.upper(), limit=limit
        )
        hits: list[dict[str, Any]] = data["search"]
        return hits

    _print_hits(query, _run_client(api, key, _search))


def _print_hits(query: str, hits: list[dict[str, Any]]) -> None:
    table = Table(title=f"{len(hits)} result(s) for {query!r}")
    for column in ("#", "document", "pages", "score", "passage"):
        table.add_column(column)
    for rank, hit in enumerate(hits, 1):
        pages = f"{hit['pageStart']}" + (
            f"-{hit['pageEnd']}" if hit["pageEnd"] != hit["pageStart"] else ""
        )
        table.add_row(
            str(rank), hit["filename"], pages, f"{hit['score']:.3f}", _rich_snippet(hit["snippet"])
        )
    console.print(table)


_STATUS = """
{
  queueStats { queued inProgress workersAlive workersWithOcr }
  documentStatusCounts { status count }
}
"""


@app.command()
def status(api: str = _API_OPTION, key: str | None = _KEY_OPTION) -> None:
    """Queue depth, live workers and your documents per status."""
    data = _run_client(api, key, lambda client: client.execute(_STATUS))
    stats = data["queueStats"]
    console.print(
        f"queue: {stats['queued']} waiting, {stats['inProgress']} running; "
        f"workers alive: {stats['workersAlive']}"
    )
    alive, ocr = stats["workersAlive"], stats["workersWithOcr"]
    if alive and ocr < alive:
        console.print(
            f"[yellow]OCR: {ocr} of {alive} workers can read scanned pages[/]; install "
            "tesseract-ocr and tesseract-ocr-eng on the others (their logs say why)"
        )
    elif alive:
        console.print(f"OCR: available on all {alive} workers")
    table = Table(title="documents")
    table.add_column("status")
    table.add_column("count", justify="right")
    for row in data["documentStatusCounts"]:
        table.add_row(row["status"], str(row["count"]))
    console.print(table)


SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEMO_CASE = "Demo: Meridian Freight v. Harbor Analytics"
DEMO_SEARCHES = (
    "security deposit",
    "who pays if the services infringe a patent",
    "why was the trade secret claim dismissed",
)


@app.command()
def demo(
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes to run."),
    port: int = typer.Option(8000, help="Port of the API."),
    db_port: int = typer.Option(5433, help="Port of the embedded PostgreSQL."),
    redis_port: int = typer.Option(6380, help="Port of the embedded Redis."),
    samples: Annotated[Path, typer.Option(help="Folder of documents to ingest.")] = SAMPLES,
) -> None:
    """Start the local stack, ingest the sample documents with live progress, run three
    searches, then keep serving GraphiQL until Ctrl-C."""
    if not samples.is_dir():
        console.print(f"[red]no sample folder at {samples}; pass --samples PATH[/red]")
        raise typer.Exit(2)

    def tour(url: str, key: str) -> None:
        async def _tour() -> str | None:
            async with ApiClient(url, key) as client:
                outcomes = await run_ingest(client, [samples], DEMO_CASE, [], console)
                case_id = await client.case_id(DEMO_CASE, create=False)
                for query in DEMO_SEARCHES:
                    data = await client.execute(
                        _SEARCH, q=query, caseId=case_id, mode="HYBRID", limit=3
                    )
                    _print_hits(query, data["search"])
                return next((o.document_id for o in outcomes if o.document_id), None)

        document_id = asyncio.run(_tour())
        console.print(
            f"\n[bold]Explore[/bold] {url}/graphql (paste the key {key} into GraphiQL's "
            "API key field), for example:\n"
            f'  subscription {{ documentProgress(documentId: "{document_id}") '
            "{ seq status stage percent } }\n"
            '  query { search(query: "governing law", limit: 3) { filename pageStart snippet } }'
            "\n\nCtrl-C stops everything."
        )

    run_dev(
        host="127.0.0.1",
        port=port,
        workers=workers,
        db_port=db_port,
        redis_port=redis_port,
        console=console,
        on_ready=tour,
    )


def main() -> None:
    app()
