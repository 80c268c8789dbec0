from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lexintel_api.cli import app
from lexintel_core.settings import Settings

runner = CliRunner()


def test_db_commands_upgrade_report_and_downgrade(
    empty_database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("LEXINTEL_DATABASE_URL", empty_database_url)

    result = runner.invoke(app, ["db", "current"])
    assert result.exit_code == 0, result.output
    assert "current: empty" in result.output
    assert "behind" in result.output

    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "upgraded to head" in result.output

    result = runner.invoke(app, ["db", "current"])
    assert "up to date" in result.output

    result = runner.invoke(app, ["db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert "current: empty" in runner.invoke(app, ["db", "current"]).output


def test_without_arguments_the_cli_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "db" in result.output
    assert "Database schema migrations" in result.output
