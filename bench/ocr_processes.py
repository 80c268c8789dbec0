"""OCR processes per document: a scanned filing's extraction time with 1 and 2 Tesseract
processes, and Tesseract's own threads against processes.

    python bench/ocr_processes.py [--file PDF] [--processes 1 2] [--repeat 3] [--pages N]

Extraction: the worker's Extractor (child processes, pypdfium2, OCR "auto" at 200 dpi) with
OcrOptions.jobs = each --processes value (LEXINTEL_OCR_JOBS) and as many shared slots, one
warm-up document per configuration (the child's start-up is not the document's time), then
--repeat rounds, the configurations taking turns within a round so that a change in the
machine's load hits each alike. The time is Extractor.extract's wall time; the median of the
rounds and its ratio to the first configuration are printed. The default --file is the
corpus's 19-page scanned filing, court-filings/gov.uscourts.cacd.554588.350.0.pdf (18 pages are
scans with only the court's stamp as text); --pages N takes its first N pages.

Threads: Tesseract is an OpenMP program and would start one thread per CPU by itself; the
project runs it with OMP_THREAD_LIMIT=1 (ocr.py). On one rendered page: one process with 1
thread and with its default threads, then two processes at once with 1 thread each and with
their default threads each: wall seconds, median of --repeat.

Writes bench/results/ocr_processes.json (--output). Quote the CPU count and the load average
(printed) with the figures: on a shared machine other work takes cores from both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
from pypdf import PdfReader, PdfWriter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lexintel_jobs.extraction import Extractor, OcrOptions  # noqa: E402
from lexintel_jobs.extraction.ocr import TESSERACT, available_cpus, render_page  # noqa: E402

SCANNED_FILING = ROOT.parent / "shared/corpus/court-filings/gov.uscourts.cacd.554588.350.0.pdf"
DPI = 200


async def extraction_times(
    path: Path, processes: list[int], repeat: int
) -> dict[int, dict[str, Any]]:
    extractors = {
        count: Extractor(
            timeout_seconds=3600,
            memory_limit_mb=1024,
            max_concurrency=1,
            pdf_engine="pypdfium2",
            ocr=OcrOptions(mode="auto", dpi=DPI, jobs=count),
            max_ocr_processes=count,
        )
        for count in processes
    }
    seconds: dict[int, list[float]] = {count: [] for count in processes}
    pages: dict[int, list[str]] = {}
    try:
        for count, extractor in extractors.items():  # warm-up: start the child
            document = await extractor.extract(path)
            pages[count] = [page.text for page in document.pages]
            print(f"warm-up, {count} process(es): {document.coverage.pages_ocr} pages OCR'd")
        for round_ in range(1, repeat + 1):
            for count, extractor in extractors.items():
                started = time.perf_counter()
                await extractor.extract(path)
                seconds[count].append(time.perf_counter() - started)
                print(f"round {round_}, {count} process(es): {seconds[count][-1]:.2f} s")
    finally:
        for extractor in extractors.values():
            await extractor.aclose()
    first = processes[0]
    return {
        count: {
            "seconds": [round(value, 3) for value in seconds[count]],
            "median_s": round(statistics.median(seconds[count]), 3),
            "same_text_as_first": pages[count] == pages[first],
        }
        for count in processes
    }


def _tesseract(image: Path, threads: int | None) -> subprocess.Popen[bytes]:
    environment = dict(os.environ)
    environment.pop("OMP_THREAD_LIMIT", None)
    if threads is not None:
        environment["OMP_THREAD_LIMIT"] = str(threads)
    command = [TESSERACT, str(image), "stdout", "-l", "eng", "--dpi", str(DPI), "tsv"]
    return subprocess.Popen(  # noqa: S603 - fixed arguments
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment
    )


def thread_times(path: Path, repeat: int) -> dict[str, float]:
    """Wall seconds (median) of Tesseract on one page: alone and two at once, with 1 thread
    and with its default threads."""
    document = pdfium.PdfDocument(path)
    try:
        page = document[min(1, len(document) - 1)]
        image_bytes = render_page(page, DPI)
        page.close()
    finally:
        document.close()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "page.pgm"
        image.write_bytes(image_bytes)
        for at_once in (1, 2):
            for threads, label in ((1, "1 thread"), (None, "default threads")):
                runs = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    running = [_tesseract(image, threads) for _ in range(at_once)]
                    for process in running:
                        process.wait()
                    runs.append(time.perf_counter() - started)
                key = f"{at_once} process(es), {label}"
                figures[key] = round(statistics.median(runs), 3)
                print(f"tesseract, {key}: {figures[key]:.2f} s")
    return figures


def first_pages(path: Path, count: int, tmp: Path) -> Path:
    writer = PdfWriter()
    for page in PdfReader(path).pages[:count]:
        writer.add_page(page)
    target = tmp / f"first-{count}-pages.pdf"
    with target.open("wb") as handle:
        writer.write(handle)
    return target


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--file", type=Path, default=SCANNED_FILING)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", type=int, default=None, help="only the first N pages")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "ocr_processes.json"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.file.exists():
        print(f"{args.file} not found: it is in the shared corpus (../shared/corpus)")
        return 2
    print(f"CPUs available: {available_cpus()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file if args.pages is None else first_pages(args.file, args.pages, Path(tmp))
        pages = len(PdfReader(path).pages)
        print(f"{path.name}: {pages} pages")
        extraction = asyncio.run(extraction_times(path, args.processes, args.repeat))
        threads = thread_times(path, args.repeat)
    first = args.processes[0]
    print(f"\nScanned filing, {pages} pages, median of {args.repeat}:")
    for count, figures in extraction.items():
        ratio = extraction[first]["median_s"] / figures["median_s"]
        figures["speedup_over_first"] = round(ratio, 2)
        print(
            f"  {count} OCR process(es): {figures['median_s']:.2f} s "
            f"({figures['median_s'] / pages:.2f} s/page), {ratio:.2f}x, "
            f"same text: {figures['same_text_as_first']}"
        )
    result = {
        "config": {
            "file": path.name,
            "pages": pages,
            "dpi": DPI,
            "repeat": args.repeat,
            "cpus": available_cpus(),
            "load_average_after": os.getloadavg(),
        },
        "extraction": {str(count): figures for count, figures in extraction.items()},
        "tesseract_threads": threads,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
