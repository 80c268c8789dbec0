"""The installed `lexintel` console script, run as a user would, against the real database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lexintel_core.settings import Settings


def _lexintel(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lexintel", path=str(Path(sys.executable).parent))
    assert executable is not None, "the lexintel console script is not installed"
    return subprocess.run(
        [executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_lexintel_db_upgrade_from_the_command_line(
    empty_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "LEXINTEL_DATABASE_URL": empty_database_url, "COLUMNS": "200"}
    upgraded = _lexintel("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database upgraded to head" in upgraded.stdout
    current = _lexintel("db", "current", env=env, cwd=tmp_path)
    assert "up to date" in current.stdout


def test_lexintel_worker_runs_the_arq_cli(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "LEXINTEL_REDIS_URL": settings.redis_url}
    checked = _lexintel("worker", "--check", env=env, cwd=tmp_path)
    # No worker is running against the test Redis: arq's health check says so.
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "health check failed" in (checked.stdout + checked.stderr).lower()
