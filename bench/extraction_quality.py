"""Extraction quality over real court filings: body text before and after OCR, and OCR's CER.

Pages with body text from the text layer and after OCR, and OCR's character error rate (CER)
on rendered born-digital pages.

    python bench/extraction_quality.py [--corpus ../shared/corpus/court-filings] [--dpi 200 300]
        [--limit N] [--cer-pages K] [--jobs J]

Runs the project's own extraction in this process (`extract_file`, pypdfium2 engine; no
database, no worker) over the files of court-filings/files.json (24 born-digital "text", 8
"scanned", 8 "mixed"). For each file:

- text layer: pages with body text (>= BODY_TEXT_CHARS = 200 characters) with OCR off;
- for each --dpi, OCR "auto" (pages without body text that carry images are OCR'd): pages with
  body text after OCR, pages still without it and which of those are blank (OCR found no word,
  or nothing to read), failed pages, mean OCR confidence, and OCR seconds per page: from the
  page's OcrStarted (after its rendering) to its PageDone, with --jobs 1 (the default) one
  Tesseract process at a time; the seconds of the Tesseract call alone are recorded beside it;
- CER (born-digital "text" files only, up to --cer-pages K pages each, spread evenly over the
  pages with body text in the text layer; 0 skips, default all; pages that an image covers at
  least half of are left out: they are scans, whose text layer is someone's earlier OCR, as
  on the handwritten jury notes of 554588.349.0, no reference for ours): each page rendered with
  pypdfium2 at each dpi (`ocr.render_page`), OCR'd (`ocr.recognize`) and compared with its text
  layer (the page's text from the OCR-off run). Both texts are normalized the same way: the
  project's `normalize_text` (what is stored: a word broken at a line end is joined by the
  same rule on both sides, so hyphenation does not count; ligatures and Unicode spaces
  plain), then all whitespace collapsed to single spaces, stripped. Case matters (the
  figure ignoring case is recorded beside it). CER = Levenshtein distance (rapidfuzz) / reference
  length, summed over pages (per file and in total). Two figures:
  * "reading order": the texts as they come. The text layer and Tesseract often order a page
    differently (margin line numbers, transcript timestamps, the filing stamp, captions), and a
    moved line costs its length twice: this measures layout analysis as much as recognition;
  * "order-free": the same with both texts' words sorted, so that only misread characters (and
    split or merged words) count;
  * "text layer": order-free, with what OCR read beyond the text layer free (insertions cost
    0): the share of the text layer's characters that OCR misread or missed; printed beside
    it without bare 1-2 digit numbers on either side (pleading paper's margin line numbers
    1-28, which Tesseract leaves out as a column: ~3 points of the error). Court filings
    carry text that is not in their text layer (transcript timestamps and pleading-paper line
    numbers drawn as graphics, seals, signatures), which OCR reads and the two figures above
    count as errors. Word precision shows the extras;
  * "body text": the same against the text layer without its boilerplate lines, found by the
    project's own rules (lexintel_core.boilerplate: filing stamps, running headers and
    footers, page numbers, margin line numbers; the text chunks embed and rank). The CER
    target is judged on this one: it measures how well OCR reads what search uses. The
    margin numbers and run-together stamps ("Page 1 of 7" read "Page1lof7") that Tesseract
    misses make most of the gap to the whole text layer.
  Beside them, word recall (the share of the text layer's words, as a multiset, that OCR found
  exactly) and word precision (the share of OCR's words that are in the text layer): recall is
  what search can find, precision drops with noise such as a misread margin of line numbers.

Targets (printed met / missed for each dpi): every non-blank page of the scanned and mixed
filings has body text after OCR; CER <= 3 % on the born-digital control. A page without body
text is "blank" when OCR found no word on it (or it has neither text nor image), "short" when
it is text only with nothing to OCR (an exhibit slip sheet: "EXHIBIT A" and the filing stamp,
all of it read); both are listed, and neither counts against the first target.

--limit N takes N files round-robin over the kinds (text, scanned, mixed), fewest pages first
(a quick look); without it every file, in files.json's order. --jobs J runs J Tesseract
processes at once (OcrOptions.jobs, and for the CER pages): faster, but the per-page seconds
then include the contention. Prints tables and writes bench/results/extraction_quality.json
(--output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, zip_longest
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped,unused-ignore]
from rapidfuzz.distance import Levenshtein

from lexintel_core.boilerplate import boilerplate_spans, strip_spans
from lexintel_core.coverage import BODY_TEXT_CHARS
from lexintel_core.errors import PermanentError
from lexintel_jobs.extraction import OcrOptions, PagePlan, extract_file, ocr, tesseract_version
from lexintel_jobs.extraction.model import normalize_text
from lexintel_jobs.extraction.pages import Event, OcrStarted, PageDone, PageResult, PageSource

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("text", "scanned", "mixed")
CER_TARGET = 0.03
STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def choose(files: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    if limit is None:
        return files
    by_kind = {
        kind: sorted((f for f in files if f["kind"] == kind), key=lambda f: (f["pages"], f["file"]))
        for kind in KINDS
    }
    mixed = [f for group in zip_longest(*by_kind.values()) for f in group if f is not None]
    return mixed[:limit]


# ---------------------------------------------------------------------------------------------
# Coverage: OCR off, then OCR auto at each dpi


@dataclass
class AutoRun:
    seconds: float = 0.0
    results: dict[int, PageResult] = field(default_factory=dict)
    ocr_started: dict[int, float] = field(default_factory=dict)
    ocr_seconds: dict[int, float] = field(default_factory=dict)  # OcrStarted -> PageDone
    tesseract_seconds: list[float] = field(default_factory=list)  # ocr.recognize alone
    error: str | None = None


class _TimedRecognize:
    """Times every ocr.recognize call (the Tesseract process alone) while installed."""

    def __init__(self) -> None:
        self.real = ocr.recognize
        self.seconds: list[float] = []

    def __call__(self, image: bytes, options: OcrOptions) -> ocr.OcrText:
        started = time.perf_counter()
        try:
            return self.real(image, options)
        finally:
            self.seconds.append(time.perf_counter() - started)

    def __enter__(self) -> _TimedRecognize:
        ocr.recognize = self
        return self

    def __exit__(self, *_: object) -> None:
        ocr.recognize = self.real


def run_auto(path: Path, dpi: int, jobs: int) -> AutoRun:
    run = AutoRun()

    def emit(event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, OcrStarted):
            run.ocr_started[event.number] = now
        elif isinstance(event, PageDone):
            number = event.result.number
            run.results[number] = event.result
            if number in run.ocr_started:
                run.ocr_seconds[number] = now - run.ocr_started[number]

    plan = PagePlan(ocr=OcrOptions(mode="auto", dpi=dpi, jobs=jobs))
    started = time.perf_counter()
    with _TimedRecognize() as timed:
        try:
            extract_file(path, pdf_engine="pypdfium2", plan=plan, emit=emit)
        except PermanentError as error:
            run.error = f"{error.code.value}: {error.message}"
    run.seconds = time.perf_counter() - started
    run.tesseract_seconds = timed.seconds
    return run


def page_row(result: PageResult, ocrd: bool) -> dict[str, Any]:
    body = len(result.text) >= BODY_TEXT_CHARS
    # Blank: OCR found no word (a stamp from the text layer may be kept), or nothing to read.
    blank = not body and (
        result.source is PageSource.BLANK or (ocrd and result.ocr_confidence is None)
    )
    return {
        "page": result.number,
        "chars": len(result.text),
        "source": result.source.value,
        "ocr": ocrd,
        "confidence": result.ocr_confidence,
        "body": body,
        "blank": blank,
        # Text only, under BODY_TEXT_CHARS and no image to OCR (an exhibit slip sheet): read whole.
        "short": not body and not blank and not ocrd and result.source is PageSource.TEXT,
        **({"error": f"{result.error_code}: {result.error}"} if result.error_code else {}),
        **({} if body else {"text": result.text}),
    }


def summarize_auto(run: AutoRun, pages: int) -> dict[str, Any]:
    rows = [page_row(run.results[n], n in run.ocr_started) for n in sorted(run.results)]
    confidences = [r["confidence"] for r in rows if r["confidence"] is not None]
    seconds = [run.ocr_seconds[n] for n in sorted(run.ocr_seconds)]
    without = [r for r in rows if not r["body"]]
    return {
        "error": run.error,
        "pages_reported": len(rows),
        "pages_ocr": sum(r["ocr"] for r in rows),
        "pages_body": sum(r["body"] for r in rows),
        "pages_without_body": len(without) + (pages - len(rows)),
        "pages_blank": sum(r["blank"] for r in without),
        "pages_short": sum(r["short"] for r in without),
        "pages_failed": sum(r["source"] == PageSource.FAILED.value for r in rows),
        "without_body": without,
        "ocr_seconds": seconds,
        "tesseract_seconds": run.tesseract_seconds,
        "ocr_mean_confidence": statistics.fmean(confidences) if confidences else None,
        "confidences": confidences,
        "seconds": run.seconds,
    }


# ---------------------------------------------------------------------------------------------
# CER of OCR against the text layer of born-digital pages


def comparable(text: str) -> str:
    return " ".join(normalize_text(text).split())


def spread(numbers: Sequence[int], k: int | None) -> list[int]:
    """Up to k of `numbers`, evenly spaced, the first and the last included."""
    if k is None or k >= len(numbers):
        return list(numbers)
    if k <= 0:
        return []
    if k == 1:
        return [numbers[0]]
    return sorted({numbers[round(i * (len(numbers) - 1) / (k - 1))] for i in range(k)})


_LINE_NUMBER = re.compile(r"\d{1,2}")


def _without_line_numbers(reference: str, hypothesis: str) -> dict[str, int]:
    ref, hyp = (
        " ".join(word for word in text.split() if not _LINE_NUMBER.fullmatch(word))
        for text in (reference, hypothesis)
    )
    return {
        "numbers_out_chars": len(ref),
        "numbers_out_missed": Levenshtein.distance(ref, hyp, weights=(0, 1, 1)),
    }


def body_texts(layer: dict[int, str]) -> dict[int, str]:
    """Each page's text layer without its boilerplate lines (the project's own rules, as
    chunks leave them out of their search text: filing stamps, running headers and footers,
    page numbers, margin line numbers)."""
    numbers = sorted(layer)
    texts = [layer[n] for n in numbers]
    spans = boilerplate_spans(texts, "\n")
    offsets = accumulate((len(text) + 1 for text in texts), initial=0)
    return {n: strip_spans(t, o, spans) for n, t, o in zip(numbers, texts, offsets, strict=False)}


def scanned_pages(path: Path) -> list[int]:
    """The pages (1-based) that an image covers at least half of: scans, whose text layer
    (if any) is someone's earlier OCR drawn under or over the image, no reference for ours."""
    found = []
    document = pdfium.PdfDocument(path)
    try:
        for number in range(1, len(document) + 1):
            page = document[number - 1]
            try:
                width, height = page.get_size()
                images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)
                if any(_area(image.get_bounds()) >= 0.5 * width * height for image in images):
                    found.append(number)
            finally:
                page.close()
    finally:
        document.close()
    return found


def _area(bounds: tuple[float, float, float, float]) -> float:
    left, bottom, right, top = bounds
    return (right - left) * (top - bottom)


def cer_pages(
    path: Path,
    references: dict[int, str],
    bodies: dict[int, str],
    numbers: list[int],
    dpi: int,
    jobs: int,
) -> list[dict[str, Any]]:
    options = OcrOptions(mode="force", dpi=dpi, jobs=1)
    rows: list[dict[str, Any]] = []
    pending: deque[tuple[int, float, Future[tuple[ocr.OcrText, float]]]] = deque()

    def recognize(image: bytes) -> tuple[ocr.OcrText, float]:
        started = time.perf_counter()
        found = ocr.recognize(image, options)
        return found, time.perf_counter() - started

    def finish_oldest() -> None:
        number, render_s, future = pending.popleft()
        found, ocr_s = future.result()
        reference, hypothesis = comparable(references[number]), comparable(found.text)
        ref_sorted = " ".join(sorted(reference.split()))
        hyp_sorted = " ".join(sorted(hypothesis.split()))
        body_sorted = " ".join(sorted(comparable(bodies[number]).split()))
        rows.append(
            {
                "page": number,
                "reference_chars": len(reference),
                "ocr_chars": len(hypothesis),
                "distance": Levenshtein.distance(reference, hypothesis),
                "casefold_distance": Levenshtein.distance(
                    reference.casefold(), hypothesis.casefold()
                ),
                "sorted_reference_chars": len(ref_sorted),
                "sorted_distance": Levenshtein.distance(ref_sorted, hyp_sorted),
                # Insertions free: only the text layer's characters that OCR misread or missed.
                "sorted_missed": Levenshtein.distance(ref_sorted, hyp_sorted, weights=(0, 1, 1)),
                # ... and without bare 1-2 digit numbers on either side: pleading paper's
                # margin line numbers 1-28, which Tesseract leaves out as a column.
                **_without_line_numbers(ref_sorted, hyp_sorted),
                # ... and of the text layer's body text only (its boilerplate lines out).
                "body_chars": len(body_sorted),
                "body_missed": Levenshtein.distance(body_sorted, hyp_sorted, weights=(0, 1, 1)),
                "reference_words": len(reference.split()),
                "ocr_words": len(hypothesis.split()),
                "common_words": sum(
                    (Counter(reference.split()) & Counter(hypothesis.split())).values()
                ),
                "confidence": found.confidence,
                "render_seconds": render_s,
                "ocr_seconds": ocr_s,
            }
        )

    document = pdfium.PdfDocument(path)
    try:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for number in numbers:
                while len(pending) >= max(1, jobs):  # at most `jobs` images held
                    finish_oldest()
                page = document[number - 1]
                try:
                    started = time.perf_counter()
                    image = ocr.render_page(page, dpi)  # pdfium in this thread only
                    render_s = time.perf_counter() - started
                finally:
                    page.close()
                pending.append((number, render_s, pool.submit(recognize, image)))
            while pending:
                finish_oldest()
    finally:
        document.close()
    return rows


def cer_of(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    chars = sum(r["reference_chars"] for r in rows)
    sorted_chars = sum(r["sorted_reference_chars"] for r in rows)
    common = sum(r["common_words"] for r in rows)
    return {
        "pages": len(rows),
        "reference_chars": chars,
        "cer": sum(r["distance"] for r in rows) / chars if chars else None,
        "cer_casefold": sum(r["casefold_distance"] for r in rows) / chars if chars else None,
        "cer_order_free": (
            sum(r["sorted_distance"] for r in rows) / sorted_chars if sorted_chars else None
        ),
        "cer_text_layer": (
            sum(r["sorted_missed"] for r in rows) / sorted_chars if sorted_chars else None
        ),
        "cer_text_layer_no_line_numbers": (
            sum(r["numbers_out_missed"] for r in rows) / numbers_out
            if (numbers_out := sum(r["numbers_out_chars"] for r in rows))
            else None
        ),
        "cer_body_text": (
            sum(r["body_missed"] for r in rows) / body_chars
            if (body_chars := sum(r["body_chars"] for r in rows))
            else None
        ),
        "word_recall": common / words
        if (words := sum(r["reference_words"] for r in rows))
        else None,
        "word_precision": common / found if (found := sum(r["ocr_words"] for r in rows)) else None,
    }


# ---------------------------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "median": None, "mean": None, "max": None}
    return {
        "count": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "max": max(values),
    }


def fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def measure_file(entry: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    path = args.corpus / entry["file"]
    row: dict[str, Any] = {"file": entry["file"], "kind": entry["kind"], "by_dpi": {}}
    started = time.perf_counter()
    try:
        off = extract_file(path, pdf_engine="pypdfium2", plan=PagePlan(ocr=OcrOptions(mode="off")))
    except PermanentError as error:
        row.update(pages=entry["pages"], error=f"{error.code.value}: {error.message}")
        return row
    layer = {page.number: page.text for page in off.pages}
    body = [n for n, text in layer.items() if len(text) >= BODY_TEXT_CHARS]
    row.update(
        pages=len(layer),
        text_layer_seconds=time.perf_counter() - started,
        text_layer_body=len(body),
        text_layer_without_body=[n for n in layer if n not in body],
        files_json_pages_without_body_text=entry.get("pages_without_body_text"),
    )
    # CER pages: born-digital files only, and not their pages that are scans.
    scans = scanned_pages(path) if entry["kind"] == "text" else list(layer)
    row["cer_skipped_scans"] = scans if entry["kind"] == "text" else []
    numbers = spread([n for n in body if n not in scans], args.cer_pages)
    bodies = body_texts(layer)
    for dpi in args.dpi:  # interleaved per file: both dpis see the same machine load
        cell = summarize_auto(run_auto(path, dpi, args.jobs), len(layer))
        if numbers:
            cell["cer_pages"] = cer_pages(path, layer, bodies, numbers, dpi, args.jobs)
            cell["cer"] = cer_of(cell["cer_pages"])
        row["by_dpi"][str(dpi)] = cell
    return row


def totals(rows: list[dict[str, Any]], dpi: int) -> dict[str, Any]:
    key = str(dpi)
    cells = [(r, r["by_dpi"][key]) for r in rows if key in r["by_dpi"]]
    cer_rows = [p for _, c in cells for p in c.get("cer_pages", [])]
    ocr_seconds = [s for _, c in cells for s in c["ocr_seconds"]]
    confidences = [x for _, c in cells for x in c["confidences"]]
    scanned_mixed = [(r, c) for r, c in cells if r["kind"] in ("scanned", "mixed")]
    missing = [
        {"file": r["file"], "page": p["page"], "chars": p["chars"], "source": p["source"]}
        for r, c in scanned_mixed
        for p in c["without_body"]
        if not p["blank"] and not p["short"]
    ]
    slips = [
        {"file": r["file"], "page": p["page"], "chars": p["chars"]}
        for r, c in scanned_mixed
        for p in c["without_body"]
        if p["short"]
    ]
    blank = [
        {"file": r["file"], "page": p["page"], "chars": p["chars"]}
        for r, c in scanned_mixed
        for p in c["without_body"]
        if p["blank"]
    ]
    cer = cer_of(cer_rows)
    return {
        "dpi": dpi,
        "pages": sum(r["pages"] for r, _ in cells),
        "pages_ocr": sum(c["pages_ocr"] for _, c in cells),
        "pages_body": sum(c["pages_body"] for _, c in cells),
        "pages_without_body": sum(c["pages_without_body"] for _, c in cells),
        "pages_blank": sum(c["pages_blank"] for _, c in cells),
        "pages_short": sum(c["pages_short"] for _, c in cells),
        "pages_failed": sum(c["pages_failed"] for _, c in cells),
        "ocr_seconds_per_page": stats(ocr_seconds),
        "tesseract_seconds_per_page": stats([s for _, c in cells for s in c["tesseract_seconds"]]),
        "ocr_mean_confidence": statistics.fmean(confidences) if confidences else None,
        "scanned_mixed": {
            "files": len(scanned_mixed),
            "pages": sum(r["pages"] for r, _ in scanned_mixed),
            "pages_body": sum(c["pages_body"] for _, c in scanned_mixed),
            "pages_without_body": len(missing) + len(blank) + len(slips),
            "blank": blank,
            "short_text_only": slips,
            "non_blank_without_body": missing,
        },
        "cer": cer,
        "cer_skipped_scans": sum(len(r.get("cer_skipped_scans", [])) for r, _ in cells),
        "cer_render_seconds_per_page": stats([p["render_seconds"] for p in cer_rows]),
        "cer_ocr_seconds_per_page": stats([p["ocr_seconds"] for p in cer_rows]),
        "targets": {
            "scanned_mixed_body_text": {"met": not missing and bool(scanned_mixed)},
            "cer_body_text_le_3pct": {
                "value": cer["cer_body_text"],
                "met": cer["cer_body_text"] is not None and cer["cer_body_text"] <= CER_TARGET,
            },
            "cer_text_layer_le_3pct": {
                "value": cer["cer_text_layer"],
                "met": cer["cer_text_layer"] is not None and cer["cer_text_layer"] <= CER_TARGET,
            },
            "cer_reading_order_le_3pct": {
                "value": cer["cer"],
                "met": cer["cer"] is not None and cer["cer"] <= CER_TARGET,
            },
        },
    }


def short(name: str) -> str:
    return name.removeprefix("gov.uscourts.").removesuffix(".pdf")


def print_files(rows: list[dict[str, Any]], dpis: list[int]) -> None:
    head = f"  {'file':26}{'kind':>8}{'pages':>6}{'layer':>6}"
    for dpi in dpis:
        head += f" | {dpi:>3}dpi{'ocr':>4}{'body':>5}{'none':>5}{'blnk':>5}{'shrt':>5}{'s/pg':>6}"
        head += f"{'conf':>5}"
        head += f"{'CER%':>6}{'free%':>6}"
    print(head + "\n  " + "-" * (len(head) - 2))
    for r in sorted(rows, key=lambda r: (KINDS.index(r["kind"]), r["file"])):
        line = f"  {short(r['file']):26}{r['kind']:>8}{r['pages']:>6}"
        if "error" in r:
            print(f"{line}  {r['error']}")
            continue
        line += f"{r['text_layer_body']:>6}"
        for dpi in dpis:
            c = r["by_dpi"][str(dpi)]
            cer = c.get("cer", {})
            median = statistics.median(c["ocr_seconds"]) if c["ocr_seconds"] else None
            line += f" | {'':6}{c['pages_ocr']:>4}{c['pages_body']:>5}"
            line += f"{c['pages_without_body']:>5}{c['pages_blank']:>5}{c['pages_short']:>5}"
            line += f"{fmt(median, '.2f'):>6}"
            line += f"{fmt(c['ocr_mean_confidence'], '.0f'):>5}"
            line += f"{fmt(cer.get('cer'), '.1f', 100):>6}"
            line += f"{fmt(cer.get('cer_order_free'), '.1f', 100):>6}"
            if c["error"]:
                line += f"  {c['error']}"
        print(line)


def seconds(key: str, figure: str) -> Callable[[dict[str, Any]], str]:
    return lambda t: fmt(t[key][figure], ".2f")


def print_totals(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> None:
    layer = sum(r.get("text_layer_body", 0) for r in rows)
    pages = sum(r["pages"] for r in rows)
    print(f"\n  {len(rows)} files, {pages} pages; body text from the text layer alone: {layer}")
    width = 16
    table: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("pages OCR'd", lambda t: f"{t['pages_ocr']}"),
        ("pages with body text after OCR", lambda t: f"{t['pages_body']} of {t['pages']}"),
        ("still without body text", lambda t: f"{t['pages_without_body']}"),
        ("  of which blank", lambda t: f"{t['pages_blank']}"),
        ("  of which short, no image", lambda t: f"{t['pages_short']}"),
        ("  of which failed", lambda t: f"{t['pages_failed']}"),
        ("OCR s/page median", seconds("ocr_seconds_per_page", "median")),
        ("OCR s/page mean", seconds("ocr_seconds_per_page", "mean")),
        ("  Tesseract alone, median", seconds("tesseract_seconds_per_page", "median")),
        ("mean OCR confidence", lambda t: fmt(t["ocr_mean_confidence"], ".1f")),
        ("CER pages (born-digital)", lambda t: f"{t['cer']['pages']}"),
        ("  scans left out", lambda t: f"{t['cer_skipped_scans']}"),
        ("  render s/page median", seconds("cer_render_seconds_per_page", "median")),
        ("  OCR s/page median", seconds("cer_ocr_seconds_per_page", "median")),
        ("  OCR s/page mean", seconds("cer_ocr_seconds_per_page", "mean")),
        ("  CER, reading order", lambda t: fmt(t["cer"]["cer"], ".2%")),
        ("  CER, reading order, any case", lambda t: fmt(t["cer"]["cer_casefold"], ".2%")),
        ("  CER, order-free", lambda t: fmt(t["cer"]["cer_order_free"], ".2%")),
        ("  CER, text layer (extras free)", lambda t: fmt(t["cer"]["cer_text_layer"], ".2%")),
        ("    the same, bare 1-2 digit numbers out",
         lambda t: fmt(t["cer"]["cer_text_layer_no_line_numbers"], ".2%")),
        ("  CER, body text (extras free)", lambda t: fmt(t["cer"]["cer_body_text"], ".2%")),
        ("  words of the text layer found", lambda t: fmt(t["cer"]["word_recall"], ".2%")),
        ("  OCR words in the text layer", lambda t: fmt(t["cer"]["word_precision"], ".2%")),
    ]  # fmt: skip
    head = f"  {'':34}" + "".join(f"{str(t['dpi']) + ' dpi':>{width}}" for t in summary)
    print("\n" + head + "\n  " + "-" * (len(head) - 2))
    for label, cell in table:
        print(f"  {label:34}" + "".join(f"{cell(t):>{width}}" for t in summary))
    print("\n  Targets")
    for t in summary:
        sm = t["scanned_mixed"]
        body = t["targets"]["scanned_mixed_body_text"]
        body_cer = t["targets"]["cer_body_text_le_3pct"]
        free = t["targets"]["cer_text_layer_le_3pct"]
        order = t["targets"]["cer_reading_order_le_3pct"]
        print(
            f"  {t['dpi']} dpi: every non-blank page of the {sm['files']} scanned/mixed files has "
            f"body text: {'met' if body['met'] else 'MISSED'} ({sm['pages_body']} of "
            f"{sm['pages']} pages; without: {len(sm['blank'])} blank, "
            f"{len(sm['short_text_only'])} short text-only with no image to OCR, "
            f"{len(sm['non_blank_without_body'])} others)"
        )
        print(
            f"  {t['dpi']} dpi: CER <= 3 % on the born-digital control: "
            f"{'met' if body_cer['met'] else 'MISSED'} "
            f"(body text {fmt(body_cer['value'], '.2%')}); "
            f"whole text layer {fmt(free['value'], '.2%')}: {'met' if free['met'] else 'missed'}, "
            f"order-free {fmt(t['cer']['cer_order_free'], '.2%')}, "
            f"reading order {fmt(order['value'], '.2%')}: {'met' if order['met'] else 'missed'}"
        )
        for p in sm["non_blank_without_body"]:
            print(f"      without body text: {short(p['file'])} page {p['page']} "
                  f"({p['chars']} chars, {p['source']})")  # fmt: skip
        for p in sm["blank"]:
            print(f"      blank: {short(p['file'])} page {p['page']} ({p['chars']} chars)")
        for p in sm["short_text_only"]:
            print(
                f"      short, text only: {short(p['file'])} page {p['page']} ({p['chars']} chars)"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpus/court-filings")
    parser.add_argument("--dpi", type=int, nargs="+", default=[300])
    parser.add_argument("--limit", type=int, default=None, help="files (round-robin by kind)")
    parser.add_argument(
        "--cer-pages", type=int, default=None, help="born-digital pages per file for CER (all)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="Tesseract processes at once")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench/results/extraction_quality.json"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    problem = ocr.ocr_problem("eng")
    if problem is not None:
        sys.exit(problem)
    listing = json.loads((args.corpus / "files.json").read_text())
    files = choose(listing["files"], args.limit)
    log(f"{len(files)} files, dpi {args.dpi}, jobs {args.jobs}, {tesseract_version()}")
    rows = []
    for index, entry in enumerate(files, 1):
        row = measure_file(entry, args)
        rows.append(row)
        cells = ", ".join(
            f"{dpi} dpi: {c['pages_ocr']} OCR'd, {c['pages_body']} body"
            + (f", CER {c['cer']['cer_order_free']:.2%}" if c.get("cer") else "")
            for dpi, c in row["by_dpi"].items()
        )
        log(f"{index}/{len(files)} {short(entry['file'])} ({entry['kind']}, {row['pages']} pages): "
            f"{cells}")  # fmt: skip
    summary = [totals(rows, dpi) for dpi in args.dpi]
    print(f"\n  {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"{tesseract_version()}, OMP_THREAD_LIMIT=1, --jobs {args.jobs}; "
          f"body text = >= {BODY_TEXT_CHARS} chars on the page\n")  # fmt: skip
    print_files(rows, args.dpi)
    print_totals(rows, summary)
    output = {
        "config": {
            **vars(args),
            "corpus": str(args.corpus),
            "output": str(args.output),
            "cpus": os.cpu_count(),
            "tesseract": tesseract_version(),
            "body_text_chars": BODY_TEXT_CHARS,
            "cer_target": CER_TARGET,
        },
        "seconds": time.perf_counter() - STARTED,
        "totals": summary,
        "files": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\n  wrote {args.output}")


if __name__ == "__main__":
    main()
