"""pypdf versus pypdfium2: pages/s over the shared sample corpus (in-process, no child).

    python bench/pdf_engines.py [--repeat 3] [--corpus ../shared/corpus/pdf-samples]

Prints one line per engine (median over the repeats) and writes bench/results/pdf_engines.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

from lexintel_core.errors import PermanentError
from lexintel_jobs.extraction import PDF_ENGINES, extract_file

ROOT = Path(__file__).resolve().parents[1]


def measure(paths: list[Path], engine: str) -> tuple[int, float]:
    pages, started = 0, time.perf_counter()
    for path in paths:
        with contextlib.suppress(PermanentError):  # encrypted / damaged samples: both refuse
            pages += len(extract_file(path, pdf_engine=engine).pages)
    return pages, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpus/pdf-samples")
    args = parser.parse_args()
    paths = sorted(args.corpus.rglob("*.pdf"))
    results = {}
    for engine in PDF_ENGINES:
        runs = [measure(paths, engine) for _ in range(args.repeat)]
        pages = runs[0][0]
        seconds = statistics.median(elapsed for _, elapsed in runs)
        results[engine] = {"files": len(paths), "pages": pages, "seconds": seconds}
        rate = pages / seconds
        print(f"{engine:10} {len(paths)} files {pages} pages {seconds:6.2f} s {rate:7.1f} pages/s")
    out = ROOT / "bench/results/pdf_engines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
