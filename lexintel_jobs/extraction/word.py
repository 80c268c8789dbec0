"""Word (.docx): body paragraphs and table cells in document order.

Read straight from the ZIP with a streaming expat parser rather than python-docx: python-docx
builds the whole lxml tree (several times the XML's size in memory) and skips content it has
no object for (content controls, text boxes), while a stream visits every paragraph in order
at constant memory. Headers, footers, footnotes and comments are not read.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from xml.parsers import expat

from lexintel_core.errors import ErrorCode, PermanentError
from lexintel_core.filetypes import unsupported

# Zip-bomb guards for the main document part: the declared size, and the ratio of declared
# to compressed size (text XML deflates 5-20:1; 300 MB of spaces deflate ~1000:1).
MAX_DOCUMENT_XML_BYTES = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 250
_RATIO_CHECK_FROM = 10 * 1024 * 1024  # small parts may be as repetitive as they like

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_RELATIONSHIP = "http://schemas.openxmlformats.org/package/2006/relationships Relationship"
_OFFICE_DOCUMENT = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",  # Strict OOXML
)
_STRICT_W = "http://purl.oclc.org/ooxml/wordprocessingml/main"
_READ_SIZE = 256 * 1024
_BLANK_LINES = re.compile(r"\n{3,}")


def damaged(detail: str) -> PermanentError:
    return PermanentError(
        f"the Word document is damaged and cannot be read ({detail})", code=ErrorCode.UNSUPPORTED
    )


def _refuse_dtd(*args: object) -> None:
    # OOXML has no DTD; one here can only be an entity-expansion attack.
    raise damaged("it declares a DTD")


def _parser() -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    return parser


def _main_part(archive: zipfile.ZipFile) -> str:
    """The name of the main document part, from the package relationships."""
    names = set(archive.namelist())
    targets: list[str] = []

    def relationship(name: str, attrs: dict[str, str]) -> None:
        if name == _RELATIONSHIP and attrs.get("Type") in _OFFICE_DOCUMENT:
            targets.append(posixpath.normpath(attrs.get("Target", "").lstrip("/")))

    if "_rels/.rels" in names and archive.getinfo("_rels/.rels").file_size <= 1024 * 1024:
        parser = _parser()
        parser.StartElementHandler = relationship
        parser.Parse(archive.read("_rels/.rels"), True)
    for target in [*targets, "word/document.xml"]:
        if target in names:
            return target
    raise unsupported("a ZIP archive that is not a Word document")


def _check_size(info: zipfile.ZipInfo) -> None:
    if info.file_size > MAX_DOCUMENT_XML_BYTES:
        raise PermanentError(
            f"the Word document is too large: its text part unpacks to {info.file_size:,} bytes "
            f"(limit {MAX_DOCUMENT_XML_BYTES:,})",
            code=ErrorCode.TOO_LARGE,
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= _RATIO_CHECK_FROM and ratio > MAX_COMPRESSION_RATIO:
        raise PermanentError(
            f"the Word document looks like a zip bomb: its text part is compressed {ratio:.0f}:1",
            code=ErrorCode.TOO_LARGE,
        )


class _BodyText:
    """expat handlers that collect the text of w:body: w:t runs, tabs and breaks;
    paragraphs end with a blank line, table cells with a tab, table rows with a newline."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self._stack: list[str] = []  # local names of the open elements
        self._in_text = 0
        self._skip = 0  # depth inside mc:Fallback (a duplicate of mc:Choice's content)
        self._cells: list[int] = []  # where each open table cell's text starts in `out`

    def start(self, name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if self._skip or (namespace == _MC and local == "Fallback"):
            self._skip += 1
            return
        word = namespace in (_W, _STRICT_W)
        parent = self._stack[-1] if self._stack else ""
        self._stack.append(local if word else "")
        if not word:
            return
        if local == "t":
            self._in_text += 1
        elif local == "tab" and parent == "r":  # not a tab stop of the paragraph style
            self.out.append("\t")
        elif local in ("br", "cr"):
            self.out.append("\n")
        elif local == "noBreakHyphen":
            self.out.append("\u2011")
        elif local == "tc":
            self._cells.append(len(self.out))

    def end(self, name: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        local = self._stack.pop()
        if local == "t":
            self._in_text -= 1
        elif local == "p":
            self.out.append("\n\n")
        elif local == "tc" and self._cells:
            # A cell's paragraphs share its line: "Plaintiff: John Doe<TAB>Defendant: ..."
            start = self._cells.pop()
            cell = " ".join("".join(self.out[start:]).split("\n\n")).strip()
            del self.out[start:]
            self.out.append(cell.replace("\n", " ") + "\t")
        elif local in ("tr", "tbl"):
            self.out.append("\n")

    def data(self, text: str) -> None:
        if self._in_text and not self._skip:
            self.out.append(text)


def _body_text(archive: zipfile.ZipFile, part: str) -> str:
    collector = _BodyText()
    parser = _parser()
    parser.StartElementHandler = collector.start
    parser.EndElementHandler = collector.end
    parser.CharacterDataHandler = collector.data
    parser.buffer_text = True
    with archive.open(part) as stream:
        while piece := stream.read(_READ_SIZE):
            parser.Parse(piece, False)
        parser.Parse(b"", True)
    lines = "".join(collector.out).split("\n")
    text = "\n".join(line.rstrip("\t") for line in lines)
    return _BLANK_LINES.sub("\n\n", text).strip("\n")  # empty paragraphs add nothing


def read_docx(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            part = _main_part(archive)
            _check_size(archive.getinfo(part))
            return _body_text(archive, part)
    except (PermanentError, MemoryError):
        raise
    except Exception as error:  # BadZipFile, ExpatError, bad CRC, unknown compression...
        raise damaged(f"{type(error).__name__}: {error}"[:200]) from error
