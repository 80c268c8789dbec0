"""OCR of rendered PDF pages with Tesseract 5 (the `tesseract` command of Debian's
`tesseract-ocr` package, with one `tesseract-ocr-<lang>` package per language).

Pages are rendered with pypdfium2 to 8-bit grey PGM and piped to `tesseract stdin stdout tsv`;
the TSV gives the words with their layout (blocks, paragraphs, lines) and a confidence each.
Tesseract runs single-threaded (OMP_THREAD_LIMIT=1): its own threads made it about six times
slower on two busy cores, so pages are run in parallel processes instead (see pdf.py), up to
`OcrOptions.jobs` per document and, across the worker's documents, a shared number of
`OcrSlots` (one per CPU) beyond each document's first.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lexintel_core.errors import FailureCode, PermanentError

__all__ = [
    "OcrOptions",
    "OcrSlots",
    "OcrText",
    "available_cpus",
    "ocr_problem",
    "recognize",
    "render_page",
    "tesseract_version",
]

TESSERACT = "tesseract"
_STDERR_LIMIT = 300


@dataclass(frozen=True)
class OcrOptions:
    """How pages are OCR'd: `mode` "auto" (pages without body text that carry images),
    "force" (every page; the OCR text replaces the text layer) or "off"; Tesseract
    `languages` ("eng", "eng+deu"), rendering `dpi`, `jobs` Tesseract processes at once and
    `page_timeout_seconds` for one page."""

    mode: str = "auto"
    languages: str = "eng"
    dpi: int = 200
    jobs: int = 1
    page_timeout_seconds: float = 60.0


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's cpuset, taskset)."""
    return len(os.sched_getaffinity(0)) or 1


@dataclass(frozen=True)
class OcrSlots:
    """Tesseract processes shared by every extraction child of one worker: `directory` holds
    one lock file per slot, and a process holds a slot by an exclusive flock on its file for
    as long as its Tesseract runs. The kernel drops the lock of a process that dies, so a
    killed child never leaks a slot."""

    directory: str

    @classmethod
    def create(cls, directory: Path, count: int) -> OcrSlots:
        for number in range(count):
            (directory / f"slot-{number}").touch()
        return cls(str(directory))

    def take(self) -> int | None:
        """A free slot's descriptor (give it back with `release`), or None when all are held."""
        try:
            entries = sorted(os.listdir(self.directory))
        except OSError:  # the worker is closing its extractor: no more second processes
            return None
        for entry in entries:
            descriptor = os.open(os.path.join(self.directory, entry), os.O_RDONLY)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            return descriptor
        return None

    @staticmethod
    def release(descriptor: int) -> None:
        os.close(descriptor)  # closing the only descriptor of the file drops its flock


@dataclass(frozen=True)
class OcrText:
    text: str
    confidence: float | None  # Tesseract's mean word confidence, 0-100; None without words


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


@functools.cache
def tesseract_version() -> str | None:
    """ "tesseract 5.3.0", or None when the command is missing or broken."""
    if shutil.which(TESSERACT) is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [TESSERACT, "--version"], capture_output=True, timeout=30, env=_environment()
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout or done.stderr).decode(errors="replace").splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


@functools.cache
def _installed_languages() -> frozenset[str]:
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [TESSERACT, "--list-langs"], capture_output=True, timeout=30, env=_environment()
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    # The first line is a header ("List of available languages in ...").
    lines = done.stdout.decode(errors="replace").splitlines()[1:]
    return frozenset(line.strip() for line in lines if line.strip())


def ocr_problem(languages: str) -> str | None:
    """Why OCR in `languages` cannot run here (naming what to install), or None when it can."""
    if importlib.util.find_spec("pypdfium2") is None:
        return "OCR renders pages with pypdfium2: install LexIntel's `pdfium` extra"
    if tesseract_version() is None:
        return (
            "OCR needs Tesseract, which is not installed on this worker: "
            "install the Debian/Ubuntu packages tesseract-ocr and tesseract-ocr-eng"
        )
    missing = [lang for lang in languages.split("+") if lang not in _installed_languages()]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        return f"Tesseract has no data for {', '.join(missing)}: install {packages}"
    return None


def unavailable(problem: str) -> PermanentError:
    return PermanentError(
        f"{problem}; pages without a text layer cannot be read", code=FailureCode.OCR_UNAVAILABLE
    )


def render_page(page: object, dpi: int) -> bytes:
    """The pypdfium2 `page` rendered at `dpi` as an 8-bit grey PGM image."""
    bitmap = page.render(scale=dpi / 72, grayscale=True)  # type: ignore[attr-defined]
    try:
        width, height, stride = bitmap.width, bitmap.height, bitmap.stride
        pixels = bytes(bitmap.buffer)
    finally:
        bitmap.close()
    if stride != width:  # rows are padded to 4 bytes
        pixels = b"".join(pixels[row * stride : row * stride + width] for row in range(height))
    return b"P5\n%d %d\n255\n" % (width, height) + pixels


def _text_from_tsv(tsv: str) -> OcrText:
    """Words joined into lines, lines into paragraphs (blank line between paragraphs)."""
    paragraphs: list[list[list[str]]] = []
    confidences: list[float] = []
    last_paragraph: tuple[str, str] | None = None
    last_line: str | None = None
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t")
        if len(fields) < 12 or fields[0] != "5" or not fields[11].strip():
            continue
        _, _, block, paragraph, line, _, _, _, _, _, confidence, word = fields[:12]
        if (block, paragraph) != last_paragraph:
            paragraphs.append([])
            last_paragraph, last_line = (block, paragraph), None
        if line != last_line:
            paragraphs[-1].append([])
            last_line = line
        paragraphs[-1][-1].append(word.strip())
        try:
            if float(confidence) >= 0:
                confidences.append(float(confidence))
        except ValueError:
            pass
    text = "\n\n".join("\n".join(" ".join(words) for words in lines) for lines in paragraphs)
    mean = sum(confidences) / len(confidences) if confidences else None
    return OcrText(text, mean)


def recognize(image: bytes, options: OcrOptions) -> OcrText:
    """The text of a PGM/PNG `image`. Raises PermanentError TIMEOUT when Tesseract takes
    longer than the page timeout, TOO_LARGE when it is killed (its memory cap), UNSUPPORTED
    when it fails on the image, OCR_UNAVAILABLE when it cannot be started."""
    command = [TESSERACT, "stdin", "stdout", "-l", options.languages, "--dpi", str(options.dpi)]
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, validated languages
            [*command, "tsv"],
            input=image,
            capture_output=True,
            timeout=options.page_timeout_seconds,
            env=_environment(),
        )
    except subprocess.TimeoutExpired:
        raise PermanentError(
            f"OCR of the page took longer than {options.page_timeout_seconds:g} s",
            code=FailureCode.TIMEOUT,
        ) from None
    except OSError as error:
        raise unavailable(f"Tesseract could not be started ({error})") from error
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()[-_STDERR_LIMIT:]
        code = FailureCode.TOO_LARGE if done.returncode < 0 else FailureCode.UNSUPPORTED_TYPE
        raise PermanentError(
            f"OCR failed on the page (exit status {done.returncode}: {detail})", code=code
        )
    return _text_from_tsv(done.stdout.decode(errors="replace"))
