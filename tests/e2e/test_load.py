"""`bench/load.py` as a user runs it, at a reduced size: its own embedded servers, the API and
two workers as processes, concurrent uploads and live subscribers; exit code 0, no errors, and
figures in the JSON that are positive and agree with each other."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.workers import environment_without_settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "load.py"
DOCUMENTS, CLIENTS, SUBSCRIBERS, WORKERS, MIN_PAGES, MAX_PAGES = 20, 4, 100, 2, 2, 5
RUN_SECONDS = 240  # about 20 s on a 2-core machine; generous for a busy CI runner


def _run(tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    output = tmp_path / "load.json"
    arguments = [sys.executable, str(SCRIPT), "--output", str(output)]
    arguments += ["--documents", str(DOCUMENTS), "--clients", str(CLIENTS)]
    arguments += ["--subscribers", str(SUBSCRIBERS), "--workers", str(WORKERS)]
    arguments += ["--pages", str(MIN_PAGES), str(MAX_PAGES), "--log-dir", str(tmp_path / "logs")]
    # Its own embedded servers and default settings, whatever this environment points at.
    process = subprocess.Popen(
        arguments,
        cwd=tmp_path,
        env=environment_without_settings(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed, _ = process.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # the script stops its processes and servers
        printed, _ = process.communicate(timeout=90)
        pytest.fail(f"bench/load.py ran over {RUN_SECONDS}s:\n{printed}")
    result = json.loads(output.read_text()) if output.exists() else {}
    return process.returncode, printed, result


def test_load_script_uploads_processes_and_streams_without_errors(tmp_path: Path) -> None:
    returncode, printed, result = _run(tmp_path)
    assert returncode == 0, printed
    assert result["errors"] == 0, result["error_samples"]
    assert set(result["error_counts"].values()) == {0}
    assert result["error_samples"] == []
    assert "documents/min" in printed
    assert "pages/s" in printed

    assert result["documents_ready"] == DOCUMENTS
    assert DOCUMENTS * MIN_PAGES <= result["pages_ready"] <= DOCUMENTS * MAX_PAGES
    assert result["bytes_uploaded"] > 0
    # Every subscriber attached, saw READY and nothing else went missing on the way.
    assert result["subscribers"] == SUBSCRIBERS
    assert result["subscribers_terminal"] == SUBSCRIBERS
    assert result["subscribers_ready"] == SUBSCRIBERS
    assert 0 < result["server_peak_subscriptions"] <= SUBSCRIBERS
    assert result["hub_reconnects"] == 0
    assert result["events_received"] >= SUBSCRIBERS
    assert result["snapshots_replayed"] <= result["events_received"]

    elapsed = result["elapsed_s"]
    assert result["upload_phase_s"] > 0
    assert elapsed > 0
    assert result["documents_per_min"] == pytest.approx(DOCUMENTS / elapsed * 60)
    assert result["pages_per_s"] == pytest.approx(result["pages_ready"] / elapsed)

    upload = result["upload_ms"]
    assert upload["count"] == DOCUMENTS
    assert 0 < upload["p50"] <= upload["p99"] <= upload["max"]
    latency = result["progress_latency_ms"]
    assert 0 < latency["count"] <= result["events_received"]
    assert 0 <= latency["p50"] <= latency["p99"] <= latency["max"]

    rss = result["rss_mb"]
    assert rss["samples"] > 0
    assert rss["api_peak"] > 0
    assert 0 < rss["workers_peak_max"] <= rss["workers_peak_sum"]
    assert rss["worker_children_peak"] >= 1  # extraction runs in child processes

    config = result["config"]
    assert (config["documents"], config["clients"]) == (DOCUMENTS, CLIENTS)
    assert (config["subscribers"], config["workers"]) == (SUBSCRIBERS, WORKERS)
