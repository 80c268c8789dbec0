"""`lexintel dev`: the whole stack on one machine with nothing configured.

Embedded PostgreSQL (with pgvector) and a Redis-compatible server keep their data under
`<data_dir>/`, so a restart keeps the cases; migrations run; a development API key is created
once and reused; the API runs in this process (uvicorn) and N arq workers as child processes.
SIGINT/SIGTERM stop the API, then the workers, then the servers. With `LEXINTEL_DATABASE_URL`
or `LEXINTEL_REDIS_URL` set, those servers are used instead of embedded ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import typer
import uvicorn
from rich.console import Console
from sqlalchemy import select

from lexintel_api.auth import create_api_key, hash_secret
from lexintel_api.websocket import WS_PROTOCOL
from lexintel_core import migrate
from lexintel_core.db import create_session_factory, engine_for
from lexintel_core.embedded_servers import EmbeddedPostgres, EmbeddedRedis
from lexintel_core.models import ApiKey
from lexintel_core.settings import Settings

DEV_ORGANIZATION = "Development"
WORKER_SETTINGS = "lexintel_jobs.worker.WorkerSettings"  # by name: api does not import jobs
_WORKER_STOP_SECONDS = 40.0


def worker_command(*arq_args: str) -> list[str]:
    """The arq CLI for LexIntel's worker, in this interpreter."""
    return [sys.executable, "-m", "arq", *arq_args, WORKER_SETTINGS]


@contextlib.contextmanager
def _embedded_servers(
    settings: Settings, *, db_port: int, redis_port: int, console: Console
) -> Iterator[None]:
    """Start the embedded servers for the URLs that are not configured, and point this
    process and its children (API, workers) at them through the environment."""
    data_dir = settings.data_dir.resolve()
    with contextlib.ExitStack() as stack:
        if "database_url" not in settings.model_fields_set:
            postgres = EmbeddedPostgres(data_dir / "postgres", port=db_port)
            console.print(f"starting PostgreSQL (pgvector) on port {postgres.port}...")
            postgres.start()
            stack.callback(postgres.stop)
            postgres.create_database("lexintel")
            os.environ["LEXINTEL_DATABASE_URL"] = postgres.url("lexintel")
        if "redis_url" not in settings.model_fields_set:
            redis = EmbeddedRedis(data_dir / "redis", port=redis_port)
            console.print(f"starting Redis on port {redis.port}...")
            redis.start()
            stack.callback(redis.stop)
            os.environ["LEXINTEL_REDIS_URL"] = redis.url()
        yield


async def _valid_or_new_key(settings: Settings, saved: str | None) -> str:
    """`saved` if it is still an active key, else a new development key."""
    async with engine_for(settings) as engine, create_session_factory(engine).begin() as session:
        if saved:
            found = await session.scalar(
                select(ApiKey).where(ApiKey.secret_hash == hash_secret(saved))
            )
            if found is not None and found.is_active:
                return saved
        _, secret = await create_api_key(session, DEV_ORGANIZATION, name="lexintel dev")
        return secret


def user_key_file() -> Path:
    """Where `lexintel dev` also leaves its key, so the CLI finds it from any folder:
    dev-api-key in the user's config folder ($XDG_CONFIG_HOME/lexintel, ~/.config/lexintel)."""
    return Path(typer.get_app_dir("lexintel")) / "dev-api-key"


def _development_key(settings: Settings, key_file: Path) -> str:
    """The development API key: the one saved in `key_file` if it still works, else new.
    Saved in `key_file` and in user_key_file()."""
    saved = key_file.read_text().strip() if key_file.exists() else None
    key = asyncio.run(_valid_or_new_key(settings, saved))
    for path in (key_file, user_key_file()):
        if not path.exists() or path.read_text().strip() != key:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key + "\n")
            path.chmod(0o600)
    return key


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        if process.poll() is None:
            process.terminate()  # arq finishes running jobs within the grace period
    for process in workers:
        try:
            process.wait(_WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# Runs once the API answers, with its base URL and the development key (the demo's tour).
OnReady = Callable[[str, str], None]


def _serve(server: uvicorn.Server, on_ready: OnReady | None, url: str, key: str) -> None:
    """Run the API in a thread until SIGINT/SIGTERM; `on_ready` runs here meanwhile and is
    interrupted by the signal. Returns only after the API has stopped."""
    stop = threading.Event()
    touring = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if touring.is_set():
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()  # uvicorn installs no signal handlers off the main thread
    try:
        while not server.started and not stop.is_set():
            if not thread.is_alive():
                raise SystemExit("the API did not start; see the log above")
            time.sleep(0.05)
        if on_ready is not None and not stop.is_set():
            touring.set()
            on_ready(url, key)
            touring.clear()
        while thread.is_alive() and not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass  # a stop requested during the tour
    finally:
        touring.clear()
        server.should_exit = True
        thread.join()


def run_dev(
    *,
    host: str,
    port: int,
    workers: int,
    db_port: int,
    redis_port: int,
    console: Console,
    on_ready: OnReady | None = None,
) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # until the API runs: stop cleanly too
    configured = Settings()
    data_dir = configured.data_dir.resolve()
    with _embedded_servers(configured, db_port=db_port, redis_port=redis_port, console=console):
        settings = Settings()
        console.print("applying migrations...")
        migrate.upgrade(settings)
        key = _development_key(settings, data_dir / "dev-api-key")
        processes: list[subprocess.Popen[bytes]] = []
        # Workers log to a file: their lines would break the live progress bars.
        log_file = data_dir / "logs" / "workers.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log_file.open("ab") as log:
                for _ in range(workers):
                    # Own sessions: Ctrl-C reaches only us, and we stop the workers in order.
                    processes.append(
                        subprocess.Popen(  # noqa: S603
                            worker_command(),
                            start_new_session=True,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            url = f"http://{host}:{port}"
            console.print(
                f"\n[bold green]LexIntel is running[/bold green] with {workers} worker(s)\n"
                f"  GraphiQL:  {url}/graphql\n"
                f"  API key:   {key}\n"
                f"  Worker log: {log_file}\n"
                f"  (send it as `Authorization: Bearer <key>`; GraphiQL asks for it once;\n"
                f"   Ctrl-C stops everything)\n"
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    "lexintel_api.app:app",
                    host=host,
                    port=port,
                    log_level="warning",
                    # docs/BENCHMARKS.md: memory per subscriber
                    ws=WS_PROTOCOL,
                    ws_per_message_deflate=False,
                    proxy_headers=False,  # LEXINTEL_API_TRUSTED_PROXIES decides
                )
            )
            _serve(server, on_ready, url, key)
        finally:
            _stop(processes)
