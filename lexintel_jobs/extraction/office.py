"""Office formats: Word (.docx, and .doc through antiword), WordPerfect (.wpd, through
wpd2text), RTF and OpenDocument text (.odt), each to the raw text of its pages.

Pages come from what each format records: .docx from its page-break marks (word.py), .odt
from `text:soft-page-break` (where LibreOffice broke the pages when it last laid the file
out) and from paragraphs whose style breaks the page, RTF from `\\page` and `\\pagebb`.
antiword's and wpd2text's text output marks no page breaks (antiword's `vEndOfPageTXT` is a
paragraph end; only its DocBook output has `<beginpage/>`), so .doc and .wpd are one page.
Footnotes, endnotes, comments, headers and footers are placed as in a .docx: see word.py.

RTF (rtf.py) and ODT (odt.py) are read in Python, .docx in word.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lexintel_core.errors import FailureCode, PermanentError
from lexintel_core.filetypes import (
    DOC,
    DOCX,
    NOT_A_DOCUMENT_ZIP,
    ODT,
    RTF,
    WPD,
    odf_content_type,
    unsupported,
)
from lexintel_jobs.extraction.odt import read_odt
from lexintel_jobs.extraction.rtf import read_rtf
from lexintel_jobs.extraction.word import damaged, main_part_kind, read_docx

__all__ = ["read_office", "zip_content_type"]

_OTHER_OOXML = {
    "xl": "an Excel workbook (.xlsx)",
    "ppt": "a PowerPoint presentation (.pptx)",
    "visio": "a Visio drawing (.vsdx)",
}


def zip_content_type(path: Path) -> str:
    """DOCX or ODT, from the whole archive's directory (an OpenDocument package's `mimetype`,
    an OOXML package's main part). PermanentError(UNSUPPORTED) naming other ZIPs."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and archive.getinfo("mimetype").file_size <= 256:
                return odf_content_type(archive.read("mimetype").decode("latin-1"))
            kind = main_part_kind(archive)
    except (PermanentError, MemoryError, OSError):
        raise
    except Exception as error:  # BadZipFile, a damaged _rels/.rels...
        raise damaged(f"{type(error).__name__}: {error}"[:200], "ZIP archive") from error
    if kind is None:
        raise unsupported(NOT_A_DOCUMENT_ZIP)
    if kind in _OTHER_OOXML:
        raise unsupported(_OTHER_OOXML[kind])
    return DOCX


def read_office(path: Path, content_type: str, *, timeout_seconds: float) -> tuple[str, list[str]]:
    """(engine, raw text of each page, page 1 first) of the DOCX, DOC, WPD, RTF or ODT file
    at `path`; formats without page information give one page. The text is not normalised.

    PermanentError: UNSUPPORTED (damaged, password-protected, or refused by the converter),
    TOO_LARGE (zip bomb), CONVERTER_UNAVAILABLE (antiword or wpd2text not installed), TIMEOUT
    (a converter ran past `timeout_seconds`).
    """
    if content_type == DOCX:
        return "docx", read_docx(path)
    if content_type == ODT:
        return "odt", read_odt(path)
    if content_type == RTF:
        return "rtf", read_rtf(path.read_bytes())
    if content_type == DOC:
        text = _convert(_ANTIWORD, path, timeout_seconds)
        return "antiword", [text.replace("[pic]", "")]  # antiword's mark for an image
    if content_type == WPD:
        return "wpd2text", [_convert(_WPD2TEXT, path, timeout_seconds)]
    raise ValueError(f"not an office format: {content_type}")


# .doc and .wpd: command-line converters


@dataclass(frozen=True)
class _Converter:
    program: str
    package: str  # the Debian/Ubuntu package that installs it
    what: str
    options: tuple[str, ...]


# -w 0: no line wrapping; -m UTF-8.txt: UTF-8 output whatever the locale.
_ANTIWORD = _Converter(
    "antiword", "antiword", "Word 97-2003 (.doc)", ("-w", "0", "-m", "UTF-8.txt")
)
_WPD2TEXT = _Converter("wpd2text", "libwpd-tools", "WordPerfect (.wpd)", ())
_STDERR_CHARS = 300


def _unavailable(converter: _Converter) -> PermanentError:
    return PermanentError(
        f"reading {converter.what} files needs {converter.program}, which is not installed "
        f"on this worker (install the Debian/Ubuntu package {converter.package})",
        code=FailureCode.CONVERTER_UNAVAILABLE,
    )


def _convert(converter: _Converter, path: Path, timeout_seconds: float) -> str:
    """The converter's standard output for `path`. It runs inside the extraction child, so
    it inherits the child's memory and CPU limits."""
    program = shutil.which(converter.program)
    if program is None:
        raise _unavailable(converter)
    environment = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        result = subprocess.run(  # noqa: S603 - a fixed program and our own file's path
            [program, *converter.options, os.path.abspath(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_seconds,
            env=environment,
            check=False,
        )
    except FileNotFoundError:
        raise _unavailable(converter) from None
    except subprocess.TimeoutExpired:
        raise PermanentError(
            f"{converter.program} took longer than {timeout_seconds:g} s on this document",
            code=FailureCode.TIMEOUT,
        ) from None
    if result.returncode == 0:
        return result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace")
    detail = " ".join(stderr.replace(os.path.abspath(path), "the file").split())
    detail = detail[:_STDERR_CHARS] or f"exit status {result.returncode}"
    if result.returncode == -signal.SIGXCPU:
        code = FailureCode.TIMEOUT
    elif "memory" in detail.lower() or "bad_alloc" in detail:
        code = FailureCode.TOO_LARGE
    else:
        code = FailureCode.UNSUPPORTED_TYPE
    raise PermanentError(f"{converter.program} cannot read this file: {detail}", code=code)
