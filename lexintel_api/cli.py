"""The `lexintel` command line."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from lexintel_core import migrate
from lexintel_core.db import create_engine
from lexintel_core.settings import Settings

app = typer.Typer(help="LexIntel: legal document processing and search.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
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


def main() -> None:
    app()
