"""Office formats: Word (.docx, and .doc through antiword), WordPerfect (.wpd, through
wpd2text), RTF and OpenDocument text (.odt), each to the raw text of its pages.

Pages come from what each format records: .docx from its page-break marks (word.py), .odt
from `text:soft-page-break` (where LibreOffice broke the pages when it last laid the file
out) and from paragraphs whose style breaks the page, RTF from `\\page` and `\\pagebb`.
antiword's and wpd2text's text output marks no page breaks (antiword's `vEndOfPageTXT` is a
paragraph end; only its DocBook output has `<beginpage/>`), so .doc and .wpd are one page.
Footnotes, endnotes, comments, headers and footers are placed as in a .docx: see word.py.

RTF is read with a tokenizer of our own rather than striprtf: striprtf drops footnotes,
headers and page breaks, and its hyperlink regex is cubic on hostile input (70 KB of
unclosed `{\\field{\\*\\fldinst{HYPERLINK "` took 90 s). Ours is linear: destinations we do
not show (pictures, font tables, field codes...) are skipped by a brace scan in C.
ODT is read like a .docx, with a streaming expat parser over content.xml and styles.xml,
within the same zip-bomb guards (odfpy would build a DOM of the whole document).
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import signal
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lexintel_core.errors import ErrorCode, PermanentError
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
from lexintel_jobs.extraction.word import (
    Pages,
    Parts,
    damaged,
    main_part_kind,
    read_docx,
    roman,
    tidy,
)

__all__ = ["read_office", "read_rtf", "zip_content_type"]

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
        return "odt", _read_odt(path)
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
        code=ErrorCode.CONVERTER_UNAVAILABLE,
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
            code=ErrorCode.TIMEOUT,
        ) from None
    if result.returncode == 0:
        return result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace")
    detail = " ".join(stderr.replace(os.path.abspath(path), "the file").split())
    detail = detail[:_STDERR_CHARS] or f"exit status {result.returncode}"
    if result.returncode == -signal.SIGXCPU:
        code = ErrorCode.TIMEOUT
    elif "memory" in detail.lower() or "bad_alloc" in detail:
        code = ErrorCode.TOO_LARGE
    else:
        code = ErrorCode.UNSUPPORTED
    raise PermanentError(f"{converter.program} cannot read this file: {detail}", code=code)


# ODT

_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
_FO = "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
_SVG = "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"
_DC = "http://purl.org/dc/elements/1.1/"
_ODT = "OpenDocument text"

# Content no reader sees: deleted text kept for change tracking, alternative texts of
# images, the date of a comment.
_ODT_SKIPPED = frozenset(
    {f"{_TEXT} tracked-changes", f"{_SVG} title", f"{_SVG} desc", f"{_DC} date"}
)
_ODT_HEADERS = {
    "header": "header", "header-left": "header", "header-first": "header",
    "footer": "footer", "footer-left": "footer", "footer-first": "footer",
}  # fmt: skip
_ODF_SPACE = re.compile(r"[ \t\r\n]+")
_MAX_SPACES = 1000


class _OdtText:
    """expat handlers for styles.xml then content.xml: paragraph styles that break the page,
    the headers and footers of the master pages, and the body with its notes and comments.
    Paragraphs end with a blank line, table cells with a tab, table rows with a newline."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.headers: dict[str, list[str]] = {"header": [], "footer": []}
        self.endnotes: list[str] = []
        self._breaks: dict[str, tuple[bool, bool]] = {}  # style: (break before, after)
        self._style = ""  # the style:style being read
        self._skip = 0
        self._body = 0  # depth inside office:text
        self._header: tuple[str, list[str]] | None = None  # (kind, text) being read
        self._note: list[str] | None = None  # the note or comment being read
        self._note_kind = ""
        self._note_page = 0
        self._label: list[str] | None = None  # a note's citation, a comment's author
        self._citation = ""
        self._author = ""
        self._tables: list[str] = []  # the styles of the open tables
        self._counts = {"footnote": 0, "endnote": 0}
        self._paragraphs: list[bool] = []  # open paragraphs: does each break the page after
        self._leading = True  # at a paragraph's start, where white space is dropped
        self._cells: list[int] = []
        self._rows: list[int] = []
        self._row_break = False

    def _out(self) -> list[str]:
        if self._note is not None:
            return self._note
        if self._header is not None:
            return self._header[1]
        return self.pages.out

    def _add(self, text: str) -> None:
        if self._note is None and self._header is None:
            self.pages.add(text)
        else:
            self._out().append(text)

    def _page_break(self) -> None:
        if self._note is not None or self._header is not None or not self._body:
            return
        if self._rows:
            self._row_break = True
        else:
            self.pages.new_page(always=False)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if self._skip or name in _ODT_SKIPPED:
            self._skip += 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace == _TEXT:
            self._text_start(local, attrs)
        elif namespace == _TABLE:
            if local == "table":
                self._tables.append(attrs.get(f"{_TABLE} style-name", ""))
                self._styled_break(self._tables[-1], before=True)
            elif local == "table-row" and self._note is None and self._header is None:
                self._rows.append(len(self.pages.out))
            elif local in ("table-cell", "covered-table-cell"):
                self._cells.append(len(self._out()))
        elif namespace == _OFFICE:
            if local == "text":
                self._body += 1
            elif local == "annotation" and self._note is None:
                self._open_note("comment")
        elif namespace == _STYLE:
            self._style_start(local, attrs)
        elif name == f"{_DC} creator" and self._note_kind == "comment":
            self._label = []

    def _text_start(self, local: str, attrs: dict[str, str]) -> None:
        if local in ("p", "h"):
            style = attrs.get(f"{_TEXT} style-name", "")
            self._styled_break(style, before=True)
            self._paragraphs.append(self._breaks.get(style, (False, False))[1])
            self._leading = True
        elif local == "s":
            count = attrs.get(f"{_TEXT} c", "1")
            self._add(" " * min(int(count) if count.isdigit() else 1, _MAX_SPACES))
            self._leading = False
        elif local == "tab":
            self._add("\t")
            self._leading = False
        elif local == "line-break":
            self._add("\n")
            self._leading = True
        elif local == "soft-page-break":
            self._page_break()
        elif local == "note" and self._note is None:
            self._open_note(attrs.get(f"{_TEXT} note-class", "footnote"))
        elif local == "note-citation":
            self._label = []
        elif local == "note-body":
            self._note = []

    def _style_start(self, local: str, attrs: dict[str, str]) -> None:
        if local == "style":
            self._style = attrs.get(f"{_STYLE} name", "")
        elif local in ("paragraph-properties", "table-properties") and self._style:
            before = attrs.get(f"{_FO} break-before") == "page"
            after = attrs.get(f"{_FO} break-after") == "page"
            if before or after:
                self._breaks[self._style] = (before, after)
        elif local in _ODT_HEADERS and attrs.get(f"{_STYLE} display") != "false":
            self._header = (_ODT_HEADERS[local], [])

    def _styled_break(self, style: str, *, before: bool) -> None:
        breaks = self._breaks.get(style)
        if breaks is not None and breaks[0 if before else 1]:
            self._page_break()

    def _open_note(self, kind: str) -> None:
        self._note_kind = kind
        self._note_page = self.pages.index
        self._label = None
        if kind == "comment":
            self._note = []

    def end(self, name: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace == _TEXT and local in ("p", "h"):
            self._add("\n\n")
            if self._paragraphs.pop():
                self._page_break()
        elif namespace == _TEXT and local == "note-citation":
            self._citation = "".join(self._label or []).strip()
            self._label = None
        elif (namespace, local) in ((_TEXT, "note"), (_OFFICE, "annotation")):
            self._close_note(local)
        elif name == f"{_DC} creator" and self._label is not None:
            self._author = "".join(self._label).strip()
            self._label = None
        elif namespace == _TABLE:
            self._table_end(local)
        elif namespace == _OFFICE and local == "text":
            self._body -= 1
        elif namespace == _STYLE and local == "style":
            self._style = ""
        elif namespace == _STYLE and local in _ODT_HEADERS and self._header is not None:
            kind, parts = self._header
            text = tidy("".join(parts))
            if text and text not in self.headers[kind]:
                self.headers[kind].append(text)
            self._header = None

    def _table_end(self, local: str) -> None:
        if local in ("table-cell", "covered-table-cell") and self._cells:
            out = self._out()
            start = self._cells.pop()
            cell = " ".join("".join(out[start:]).split("\n\n")).strip()
            del out[start:]
            out.append(cell.replace("\n", " ") + "\t")
        elif local == "table-row":
            self._add("\n")
            if self._note is None and self._header is None and self._rows:
                start = self._rows.pop()
                if not self._rows and self._row_break:
                    self._row_break = False
                    self.pages.move_to_new_page(start)
        elif local == "table" and self._tables:
            self._add("\n")
            self._styled_break(self._tables.pop(), before=False)

    def _close_note(self, local: str) -> None:
        if self._note is None and local == "note":  # a note without a body
            return
        text = tidy("".join(self._note or [])).strip()
        kind = self._note_kind
        self._note = None
        self._note_kind = ""
        if not text:
            return
        if kind == "comment":
            label = f"Comment by {self._author}" if self._author else "Comment"
            self._author = ""
            self.pages.notes[self._note_page].append(f"[{label}] {text}")
            return
        kind = "endnote" if kind == "endnote" else "footnote"
        self._counts[kind] += 1
        citation, self._citation = self._citation, ""
        if kind == "endnote":
            self.endnotes.append(f"[{citation or roman(self._counts[kind])}] {text}")
        else:
            self.pages.notes[self._note_page].append(f"[{citation or self._counts[kind]}] {text}")

    def data(self, text: str) -> None:
        if self._skip:
            return
        if self._label is not None:
            self._label.append(text)
            return
        if not self._paragraphs or not (self._body or self._header is not None):
            return
        text = _ODF_SPACE.sub(" ", text)  # ODF collapses white space; text:s keeps it
        if self._leading:
            text = text.lstrip(" ")
        if text:
            self._add(text)
            self._leading = False


def _read_odt(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            parts = Parts(archive, _ODT)
            manifest = "META-INF/manifest.xml"
            if manifest in parts.names and b"encryption-data" in parts.read(manifest):
                raise PermanentError(
                    "the OpenDocument text is password-protected: save it without a password "
                    "and upload it again",
                    code=ErrorCode.UNSUPPORTED,
                )
            if "content.xml" not in parts.names:
                raise damaged("it has no content.xml", _ODT)
            pages = Pages()
            collector = _OdtText(pages)
            if "styles.xml" in parts.names:
                parts.parse("styles.xml", collector)
            parts.parse("content.xml", collector)
    except (PermanentError, MemoryError):
        raise
    except Exception as error:  # BadZipFile, ExpatError, bad CRC...
        raise damaged(f"{type(error).__name__}: {error}"[:200], _ODT) from error
    return pages.texts(
        head=collector.headers["header"], foot=collector.headers["footer"], tail=collector.endnotes
    )


# RTF

_RTF_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # control word, its numeric argument
    rb"|\\'([0-9a-fA-F]{2})"  # a byte in the current code page
    rb"|\\(.)"  # control symbol: \\ \{ \} \~ \- \_ \* and \<newline> among them
    rb"|([{}])"
    rb"|[\r\n]+"  # line ends in the file mean nothing
    rb"|([^\\{}\r\n]+)",  # text, in the current code page
    re.DOTALL,
)
_GROUP_END = re.compile(rb"\\bin(-?\d{1,10}) ?|\\[\\{}]|[{}]")
# Destinations whose text no reader sees (font names, pictures, field codes, index entries,
# bookmarks, revision tables...); any other "{\*\..." group is skipped too.
_RTF_SKIPPED = frozenset(
    {
        "colortbl", "stylesheet", "info", "pict", "fldinst", "xe", "tc", "tcn",
        "txe", "rxe", "nonshppict", "nonesttables", "listtable", "listoverridetable",
        "revtbl", "rsidtbl", "filetbl", "themedata", "colorschememapping", "datastore",
        "latentstyles", "ftnsep", "ftnsepc", "aftnsep", "aftnsepc", "ftncn", "aftncn",
        "objdata", "objclass", "objname", "bkmkstart", "bkmkend", "generator", "xmlnstbl",
        "userprops", "docvar", "template", "pgdsctbl", "atnid", "atndate", "atnref",
        "atntime", "atnicn", "atnparent", "pn", "private", "defchp", "defpap", "background",
        "protusertbl", "wgrffmtfilter", "mmathPr", "pgptbl", "do",
    }
)  # fmt: skip
_RTF_DESTINATIONS = {
    "footnote": "footnote", "annotation": "comment", "atnauthor": "author",
    "header": "header", "headerl": "header", "headerr": "header", "headerf": "header",
    "footer": "footer", "footerl": "footer", "footerr": "footer", "footerf": "footer",
}  # fmt: skip
_RTF_TEXT = {
    "par": "\n\n", "sect": "\n\n", "line": "\n", "tab": "\t", "cell": "\t", "nestcell": "\t",
    "row": "\n", "nestrow": "\n", "emdash": "\u2014", "endash": "\u2013",
    "emspace": "\u2003", "enspace": "\u2002", "qmspace": "\u2005", "bullet": "\u2022",
    "lquote": "\u2018", "rquote": "\u2019", "ldblquote": "\u201c", "rdblquote": "\u201d",
    "zwj": "\u200d", "zwnj": "\u200c", "ltrmark": "\u200e", "rtlmark": "\u200f",
}  # fmt: skip
_RTF_SYMBOLS = {
    b"~": "\xa0", b"-": "\xad", b"_": "\u2011", b"\\": "\\", b"{": "{", b"}": "}",
    b"\n": "\n\n", b"\r": "\n\n", b"\t": "\t",
}  # fmt: skip
# \fcharset: the Windows code page of a font's character set (0, 1 and 2 keep \ansicpg).
_RTF_CHARSETS = {
    77: "mac_roman", 128: "cp932", 129: "cp949", 130: "johab", 134: "gbk", 136: "big5",
    161: "cp1253", 162: "cp1254", 163: "cp1258", 177: "cp1255", 178: "cp1256",
    186: "cp1257", 204: "cp1251", 222: "cp874", 238: "cp1250", 254: "cp437", 255: "cp850",
}  # fmt: skip
_RTF_MAX_DEPTH = 5000
_RTF = "RTF document"


def _code_page(number: int) -> str | None:
    name = {65001: "utf-8", 10000: "mac_roman", 20127: "ascii"}.get(number, f"cp{number}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


class _RtfText:
    """Reads RTF: text by destination (body, notes, comments, headers), in the code page of
    the current font or the document's, with \\u characters and their fallbacks skipped."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pages = Pages()
        self.headers: dict[str, list[str]] = {"header": [], "footer": []}
        self.endnotes: list[str] = []
        self._code_page = "cp1252"  # \ansicpg
        self._fonts: dict[int, str] = {}  # font number: code page, when it has its own
        self._font_entry = -1  # the font being defined in the font table
        self._default_font = -1
        # Group state, saved at "{" and restored at "}".
        self._destination = "body"
        self._font = -1
        self._uc = 1  # how many fallback characters follow a \u
        self._deleted = False
        self._stack: list[tuple[str, int, int, bool]] = []
        self._skip = 0  # fallback characters still to skip
        self._group_start = False  # right after "{" (and "\*")
        self._starred = False
        self._pending = bytearray()  # text bytes not decoded yet
        self._pending_code_page = ""
        self._buffer: list[str] = []  # the note, comment or header being read
        self._note_page = 0
        self._author = ""
        self._counts = {"footnote": 0, "endnote": 0}

    def read(self) -> None:
        data, position, size = self.data, 0, len(self.data)
        match = _RTF_TOKEN.match
        while position < size:
            token = match(data, position)
            if token is None:  # a lone backslash at the very end
                break
            position = token.end()
            word, argument, byte, symbol, brace, text = token.groups()
            if text is not None:
                self._text(text)
            elif byte is not None:
                self._text(bytes.fromhex(byte.decode()), characters=1)
            elif brace is not None:
                self._flush()
                if brace == b"{":
                    self._open()
                else:
                    self._close()
                    if not self._stack:
                        break  # readers ignore what follows the document's group
            elif word is not None:
                self._flush()
                number = int(argument) if argument is not None else None
                position = self._word(word.decode(), number, position)
            elif symbol is not None:
                self._flush()
                self._symbol(symbol)
        self._flush()

    def _open(self) -> None:
        if len(self._stack) >= _RTF_MAX_DEPTH:
            raise damaged(f"its groups nest deeper than {_RTF_MAX_DEPTH}", _RTF)
        self._stack.append((self._destination, self._font, self._uc, self._deleted))
        self._group_start, self._starred, self._skip = True, False, 0

    def _close(self) -> None:
        self._group_start, self._skip = False, 0
        if not self._stack:
            return  # unbalanced: readers ignore the extra "}"
        closing = self._destination
        self._destination, self._font, self._uc, self._deleted = self._stack.pop()
        if closing != self._destination:
            self._finish(closing)

    def _skip_group(self, position: int) -> int:
        """The position after the "}" that closes the group we are in (brace scan in C)."""
        depth = 1
        while depth:
            found = _GROUP_END.search(self.data, position)
            if found is None:
                return len(self.data)
            position = found.end()
            if found.group(1) is not None:
                position += max(int(found.group(1)), 0)
            elif found.group() == b"{":
                depth += 1
            elif found.group() == b"}":
                depth -= 1
        self._close()
        return position

    def _word(self, word: str, number: int | None, position: int) -> int:
        if self._group_start:
            self._group_start = False
            if word in _RTF_DESTINATIONS:
                self._enter(_RTF_DESTINATIONS[word])
                return position
            if word == "fonttbl":
                self._destination = "fonttbl"
                return position
            if self._starred or word in _RTF_SKIPPED:
                return self._skip_group(position)
        if word == "bin":  # binary data: skipped whatever the destination
            return position + max(number or 0, 0)
        if self._skip:
            self._skip -= 1
        elif word == "u" and number is not None:
            self._emit(chr(number & 0xFFFF))  # signed 16-bit; surrogate pairs joined later
            self._skip = self._uc
        elif word in _RTF_TEXT:
            self._emit(_RTF_TEXT[word])
        elif word == "page":
            self._break(always=True)
        elif word == "pagebb":
            self._break(always=False)
        else:
            self._property(word, number)
        return position

    def _property(self, word: str, number: int | None) -> None:
        if word == "uc" and number is not None:
            self._uc = max(number, 0)
        elif word == "f" and number is not None:
            if self._destination == "fonttbl":
                self._font_entry = number
            else:
                self._font = number
        elif word in ("fcharset", "cpg") and self._destination == "fonttbl":
            code_page = (
                _RTF_CHARSETS.get(number or 0) if word == "fcharset" else _code_page(number or 0)
            )
            if code_page is not None:
                self._fonts[self._font_entry] = code_page
        elif word == "ansicpg" and number is not None:
            self._code_page = _code_page(number) or self._code_page
        elif word in ("mac", "pc", "pca"):
            self._code_page = {"mac": "mac_roman", "pc": "cp437", "pca": "cp850"}[word]
        elif word == "deff" and number is not None:
            self._default_font = number
        elif word == "plain":
            self._font, self._deleted = self._default_font, False
        elif word == "deleted":
            self._deleted = number != 0
        elif word == "ftnalt" and self._destination == "footnote":
            self._destination = "endnote"

    def _symbol(self, symbol: bytes) -> None:
        if symbol == b"*" and self._group_start:
            self._starred = True
            return
        self._group_start = False
        if self._skip:
            self._skip -= 1
        elif symbol in _RTF_SYMBOLS:
            self._emit(_RTF_SYMBOLS[symbol])

    def _text(self, text: bytes, characters: int | None = None) -> None:
        self._group_start = False
        if self._skip:
            skipped = min(self._skip, characters or len(text))
            self._skip -= skipped
            text = text[skipped:] if characters is None else b""
            if not text:
                return
        code_page = self._fonts.get(self._font, self._code_page)
        if self._pending and code_page != self._pending_code_page:
            self._flush()
        self._pending += text
        self._pending_code_page = code_page

    def _flush(self) -> None:
        if self._pending:
            self._emit(bytes(self._pending).decode(self._pending_code_page, errors="replace"))
            self._pending.clear()

    def _emit(self, text: str) -> None:
        if self._deleted:
            return
        if self._destination == "body":
            self.pages.add(text)
        elif self._destination != "fonttbl":
            self._buffer.append(text)

    def _break(self, *, always: bool) -> None:
        if self._destination == "body":
            self.pages.new_page(always=always)

    def _enter(self, destination: str) -> None:
        self._flush()
        if self._destination == "body":
            self._buffer = []
            self._note_page = self.pages.index
        self._destination = destination

    def _finish(self, destination: str) -> None:
        text = tidy("".join(self._buffer)).strip()
        self._buffer = []
        if destination == "author":
            self._author = text
        elif not text:
            return
        elif destination in self.headers:
            if text not in self.headers[destination]:
                self.headers[destination].append(text)
        elif destination == "comment":
            label = f"Comment by {self._author}" if self._author else "Comment"
            self._author = ""
            self.pages.notes[self._note_page].append(f"[{label}] {text}")
        elif destination == "footnote":
            self._counts["footnote"] += 1
            self.pages.notes[self._note_page].append(f"[{self._counts['footnote']}] {text}")
        elif destination == "endnote":
            self._counts["endnote"] += 1
            self.endnotes.append(f"[{roman(self._counts['endnote'])}] {text}")


def read_rtf(data: bytes) -> list[str]:
    """The raw text of each page of an RTF document (pages break at \\page and \\pagebb)."""
    if not data.startswith(b"{\\rtf"):
        raise damaged("it does not start with {\\rtf", _RTF)
    reader = _RtfText(data)
    try:
        reader.read()
    except (PermanentError, MemoryError):
        raise
    except Exception as error:  # a bug of ours on odd input: the document fails, not the child
        raise damaged(f"{type(error).__name__}: {error}"[:200], _RTF) from error
    texts = reader.pages.texts(
        head=reader.headers["header"], foot=reader.headers["footer"], tail=reader.endnotes
    )
    # \u gives UTF-16 code units: join surrogate pairs (a lone one stays for normalisation).
    return [
        text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        for text in texts
    ]
