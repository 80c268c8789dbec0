"""The `lexintel` command line."""

from __future__ import annotations

import asyncio
import os

import typer
from rich.console import Console

from lexintel_api.auth import create_api_key
from lexintel_api.devstack import run_dev, worker_command
from lexintel_core import migrate
from lexintel_core.db import create_engine, create_session_factory
from lexintel_core.settings import Settings

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
        engine = create_engine(settings)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    current = asyncio.run(_current())
    head = migrate.head_revision(settings)
    state = "[green]up to date[/green]" if current == head else "[yellow]behind[/yellow]"
    console.print(f"current: {current or 'empty'}  head: {head}  {state}")


@apikey_app.command("create")
def apikey_create(
    org: str = typer.Option(..., "--org", help="Organization name (created if missing)."),
    name: str = typer.Option("default", "--name", help="A label to tell keys apart."),
) -> None:
    """Create an API key and print it. It is shown once and stored only as a hash."""
    settings = Settings()

    async def _create() -> str:
        engine = create_engine(settings)
        try:
            async with create_session_factory(engine).begin() as session:
                _, secret = await create_api_key(session, org, name=name)
            return secret
        finally:
            await engine.dispose()

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
    --check or --burst go to arq."""
    command = worker_command(*context.args)
    os.execv(command[0], command)  # noqa: S606 - this interpreter, fixed module


def main() -> None:
    app()
