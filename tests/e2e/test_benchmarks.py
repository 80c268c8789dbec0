"""The benchmark scripts as a user runs them, at a toy size: they start their own servers and
processes, exit 0 and write figures that are complete and agree with each other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.corpus import corpus_path
from tests.tools import require_binary
from tests.workers import environment_without_settings

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, script: str, *arguments: str, timeout: float = 300) -> dict[str, Any]:
    output = tmp_path / f"{script}.json"
    command = [sys.executable, str(ROOT / "bench" / f"{script}.py"), "--output", str(output)]
    finished = subprocess.run(
        [*command, *arguments],
        cwd=tmp_path,
        env=environment_without_settings(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    printed = finished.stdout + finished.stderr
    assert finished.returncode == 0, printed
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def test_progress_latency_over_websocket_sse_and_the_baseline_hub(tmp_path: Path) -> None:
    names = ["ws-3", "sse-3", "ws-3-per-subscriber-hub"]
    result = _run(tmp_path, "progress_latency", "--levels", "3", "--seconds", "1", "--only", *names)
    scenarios = {s["name"]: s for s in result["scenarios"]}
    assert set(scenarios) == set(names)
    for scenario in scenarios.values():
        assert scenario["subscribers"] == 3
        assert scenario["lost"] == 0
        assert scenario["errors"] == []
        latency = scenario["latency"]
        assert latency["count"] == scenario["events"] > 0
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert scenario["api_rss_after_mib"] > 0
    # The shared hub holds one Pub/Sub connection; the baseline one per subscriber.
    assert scenarios["ws-3"]["redis_pubsub_connections"] == 1
    assert scenarios["sse-3"]["redis_pubsub_connections"] == 1
    assert scenarios["ws-3-per-subscriber-hub"]["redis_pubsub_connections"] == 3


def test_pipeline_throughput_over_the_corpus_and_a_generated_pdf(tmp_path: Path) -> None:
    corpus_dir = corpus_path("pdf-samples")  # skipped without the shared corpus, failed in CI
    arguments = ["--workers", "1", "--engines", "pypdf", "--big-pages", "20", "--repeat", "1"]
    arguments += ["--corpus", str(corpus_dir)]
    result = _run(tmp_path, "pipeline_throughput", *arguments)
    (cell,) = result["cells"]
    assert (cell["engine"], cell["workers"]) == ("pypdf", 1)
    corpus, big = cell["corpus"], cell["big"]
    assert corpus["documents"] == result["config"]["corpus_files"] > 0
    assert 0 < corpus["ready"] <= corpus["documents"]
    assert corpus["ready"] + len(corpus["failed"]) == corpus["documents"]
    assert (big["documents"], big["ready"], big["pages_ready"]) == (1, 1, 20)
    for workload in (corpus, big):
        assert workload["pages_per_s"] > 0
        assert 0 < workload["overhead_share"] < 1
        times = workload["times_s"]
        assert 0 < times["run"] <= times["total"]


def test_embedding_throughput_of_the_hashing_provider(tmp_path: Path) -> None:
    arguments = ["--providers", "hashing", "--chunks", "16", "--batch-sizes", "4", "8"]
    result = _run(tmp_path, "embedding_throughput", *arguments, "--repeat", "1")
    # Each batch size in both orders: shortest first (as the worker batches) and as cut.
    assert [(r["provider"], r["batch_size"], r["order"]) for r in result["results"]] == [
        ("hashing", 4, "length"),
        ("hashing", 4, "cut"),
        ("hashing", 8, "length"),
        ("hashing", 8, "cut"),
    ]
    assert all(r["chunks"] == 16 and r["chunks_per_s"] > 0 for r in result["results"])


def test_queue_latency_with_lexintels_worker_and_arqs_defaults(tmp_path: Path) -> None:
    result = _run(tmp_path, "queue_latency", "--jobs", "5", "--gap-ms", "50", "100")
    lexintel, arq_default = result["results"]["lexintel"], result["results"]["arq_default"]
    assert (lexintel["poll_delay_s"], arq_default["poll_delay_s"]) == (0.1, 0.5)
    for row in (lexintel, arq_default):
        assert row["jobs"] == 5
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]


def test_extraction_quality_over_two_court_filings(tmp_path: Path) -> None:
    require_binary("tesseract")
    corpus_dir = corpus_path("court-filings")  # skipped without the shared corpus, failed in CI
    arguments = ["--limit", "2", "--cer-pages", "1", "--dpi", "150", "--corpus", str(corpus_dir)]
    result = _run(tmp_path, "extraction_quality", *arguments)
    # --limit takes the kinds in turn, fewest pages first: a 1-page born-digital filing and a
    # 1-page scan whose text layer is only the court's stamp.
    assert [(f["kind"], f["pages"]) for f in result["files"]] == [("text", 1), ("scanned", 1)]
    assert [f["text_layer_body"] for f in result["files"]] == [1, 0]
    (total,) = result["totals"]
    assert (total["dpi"], total["pages"], total["pages_ocr"], total["pages_body"]) == (150, 2, 1, 2)
    assert total["pages_without_body"] == total["pages_failed"] == 0
    assert total["ocr_seconds_per_page"]["count"] == 1
    assert 0 < total["ocr_seconds_per_page"]["median"] == total["ocr_seconds_per_page"]["mean"]
    assert 0 < total["ocr_mean_confidence"] <= 100
    cer = total["cer"]
    assert (cer["pages"], cer["reference_chars"] >= 200) == (1, True)
    assert 0 <= cer["cer_order_free"] < 0.25  # 5 % at 150 dpi; the reading order costs more
    assert 0 <= cer["cer"] < 1
    assert 0.5 < min(cer["word_recall"], cer["word_precision"]) <= 1
    targets = total["targets"]
    assert targets["scanned_mixed_body_text"]["met"] is True
    assert targets["cer_text_layer_le_3pct"]["value"] == cer["cer_text_layer"]
    assert cer["cer_text_layer"] <= cer["cer_order_free"]
    # The target is judged on body text: the text layer less its boilerplate lines.
    assert targets["cer_body_text_le_3pct"]["value"] == cer["cer_body_text"]
    assert 0 <= cer["cer_body_text"] <= cer["cer_text_layer"]
    assert result["files"][0]["cer_skipped_scans"] == []


def test_extraction_quality_leaves_scanned_pages_out_of_the_cer(tmp_path: Path) -> None:
    # A filing labelled born-digital whose one page is an image with a text layer under it
    # (someone's earlier OCR): no reference for ours.
    require_binary("tesseract")
    source = corpus_path("court-filings")
    name = "gov.uscourts.cacd.651588.138.0.pdf"
    [entry] = [
        f for f in json.loads((source / "files.json").read_text())["files"] if f["file"] == name
    ]
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / name).symlink_to(source / name)
    (corpus_dir / "files.json").write_text(json.dumps({"files": [entry]}))
    result = _run(tmp_path, "extraction_quality", "--dpi", "150", "--corpus", str(corpus_dir))
    [row] = result["files"]
    assert (row["kind"], row["text_layer_body"], row["cer_skipped_scans"]) == ("text", 1, [1])
    assert result["totals"][0]["cer"]["pages"] == 0


def test_ocr_processes_over_two_pages_of_a_scanned_filing(tmp_path: Path) -> None:
    require_binary("tesseract")
    scanned = corpus_path("court-filings", "gov.uscourts.cacd.554588.350.0.pdf")
    arguments = ["--file", str(scanned), "--pages", "2", "--repeat", "1"]
    result = _run(tmp_path, "ocr_processes", *arguments)
    assert result["config"]["pages"] == 2
    extraction = result["extraction"]
    assert set(extraction) == {"1", "2"}
    assert all(figures["median_s"] > 0 for figures in extraction.values())
    assert extraction["2"]["same_text_as_first"] is True
    assert len(result["tesseract_threads"]) == 4
