"""Real `arq lexintel_jobs.worker.WorkerSettings` processes for tests, configured through
`LEXINTEL_*` environment variables exactly as a deployment would be."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from lexintel_core.settings import Settings

ARQ = shutil.which("arq", path=str(Path(sys.executable).parent))


def environment_without_settings() -> dict[str, str]:
    """This process's environment without any `LEXINTEL_*` variable."""
    return {key: value for key, value in os.environ.items() if not key.startswith("LEXINTEL_")}


def worker_env(settings: Settings, **values: Any) -> dict[str, str]:
    """This environment without `LEXINTEL_*`, plus the servers of `settings` and `values`."""
    values = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url, **values}
    env = environment_without_settings()
    env.update({f"LEXINTEL_{key}": str(value) for key, value in values.items()})
    return env


class Workers:
    """Worker processes started with `defaults` (and per-start overrides); each logs to its
    own file under `log_dir`."""

    def __init__(self, settings: Settings, log_dir: Path, **defaults: Any) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.defaults = defaults
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def env(self, **overrides: Any) -> dict[str, str]:
        return worker_env(self.settings, **{**self.defaults, **overrides})

    def start(self, **overrides: Any) -> subprocess.Popen[bytes]:
        assert ARQ is not None
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("wb")
        self._logs.append(log)
        process = subprocess.Popen(
            [ARQ, "lexintel_jobs.worker.WorkerSettings"],
            env=self.env(**overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    @property
    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [process for process in self.processes if process.poll() is None]

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop_all(self) -> None:
        for process in self.alive:
            process.kill()
            process.wait()
        for log in self._logs:
            log.close()
