"""`lexintel dev` as a user runs it: embedded servers, API, a worker; clean stop; restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

from lexintel_core.embedded_servers import free_port

STARTUP_SECONDS = 180


def _start(tmp_path: Path, ports: dict[str, int], command: str = "dev") -> subprocess.Popen[str]:
    executable = shutil.which("lexintel", path=str(Path(sys.executable).parent))
    assert executable is not None
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("LEXINTEL_DATABASE_URL", "LEXINTEL_REDIS_URL")
    }
    env.update(_user_env(tmp_path))
    arguments = [executable, command, "--workers", "1", "--port", str(ports["api"])]
    arguments += ["--db-port", str(ports["db"]), "--redis-port", str(ports["redis"])]
    return subprocess.Popen(
        arguments,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _user_env(tmp_path: Path) -> dict[str, str]:
    # The user's config folder (where the key is also saved) inside the test's folder.
    return {
        "LEXINTEL_EMBEDDING_PROVIDER": "hashing",
        "COLUMNS": "200",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def _wait_ready(client: httpx.Client, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("lexintel dev did not become ready")


def _graphql(client: httpx.Client, key: str, query: str, **variables: object) -> dict[str, object]:
    response = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
    )
    body = response.json()
    assert "errors" not in body, body
    data: dict[str, object] = body["data"]
    return data


def _upload(client: httpx.Client, key: str, case_id: str) -> str:
    query = (
        "mutation($c: UUID!, $f: Upload!) { uploadDocument(caseId: $c, file: $f) "
        "{ document { id } } }"
    )
    operations = {"query": query, "variables": {"c": case_id, "f": None}}
    response = client.post(
        "/graphql",
        headers={"Authorization": f"Bearer {key}", "GraphQL-Require-Preflight": "1"},
        data={"operations": json.dumps(operations), "map": '{"0": ["variables.f"]}'},
        files={"0": ("memo.txt", b"A memorandum on the lease dispute.", "text/plain")},
    )
    return str(response.json()["data"]["uploadDocument"]["document"]["id"])


def _stop(process: subprocess.Popen[str]) -> str:
    tree = psutil.Process(process.pid).children(recursive=True)
    assert tree, "the stack runs child processes (workers, Redis)"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == [], f"left running: {alive}"
    return output


def test_dev_stack_serves_processes_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    ports = {"api": free_port(), "db": free_port(), "redis": free_port()}
    process = _start(tmp_path, ports)
    with httpx.Client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as client:
        try:
            _wait_ready(client, process)
            key = (tmp_path / ".lexintel" / "dev-api-key").read_text().strip()
            created = _graphql(client, key, 'mutation { createCase(name: "Dev case") { id } }')
            case_id = str(created["createCase"]["id"])  # type: ignore[index]
            document_id = _upload(client, key, case_id)
            status = ""
            deadline = time.monotonic() + 60
            while status != "READY" and time.monotonic() < deadline:
                document = _graphql(
                    client,
                    key,
                    "query($id: UUID!) { document(id: $id) { status } }",
                    id=document_id,
                )
                status = document["document"]["status"]  # type: ignore[index]
                time.sleep(0.3)
            assert status == "READY"
            # The CLI finds the key from any folder (saved in the user's config folder too).
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("LEXINTEL_")}
            api = f"http://127.0.0.1:{ports['api']}"
            executable = shutil.which("lexintel", path=str(Path(sys.executable).parent))
            assert executable is not None
            status_run = subprocess.run(
                [executable, "status", "--api", api],
                cwd=elsewhere,
                env={**env, **_user_env(tmp_path)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert status_run.returncode == 0, status_run.stdout + status_run.stderr
            assert "READY" in status_run.stdout
        finally:
            output = _stop(process)
        assert key in output  # printed for the user
        assert not (tmp_path / ".lexintel" / "postgres" / "postmaster.pid").exists()

        again = _start(tmp_path, ports)
        try:
            _wait_ready(client, again)
            assert (tmp_path / ".lexintel" / "dev-api-key").read_text().strip() == key
            cases = _graphql(client, key, "{ cases { nodes { name } } }")
            assert cases["cases"] == {"nodes": [{"name": "Dev case"}]}
        finally:
            _stop(again)


def test_demo_ingests_the_samples_searches_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {"api": free_port(), "db": free_port(), "redis": free_port()}
    process = _start(tmp_path, ports, "demo")
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops everything." in line or time.monotonic() > deadline:
                break
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=90)
    output = "".join(lines)
    assert "Ctrl-C stops everything." in output, output + rest
    samples = sorted(p.name for p in (Path(__file__).parents[2] / "samples").iterdir())
    summary = output[output.index("Ingest summary") :]
    for name in samples:
        assert any(name[:20] in line and "READY" in line for line in summary.splitlines()), name
    assert output.count("result(s) for") == 3
    assert "order-on-motion-to-dis" in output  # the trade secret question finds the order
    # The workers' log lines go to a file, not between the live progress bars.
    log = (tmp_path / ".lexintel" / "logs" / "workers.log").read_text()
    assert "Starting worker" in log
    assert "Starting worker" not in output
    assert process.returncode == 0, rest
