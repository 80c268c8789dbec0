"""OpenDocument text (.odt): a streaming expat parser over content.xml and styles.xml, like
the .docx reader (odfpy would build a DOM of the whole document), within the same zip-bomb
guards. Pages from `text:soft-page-break` (where LibreOffice broke the pages when it last
laid the file out) and from paragraphs whose style breaks the page."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from lexintel_core.errors import FailureCode, PermanentError
from lexintel_jobs.extraction.word import Pages, Parts, damaged, roman, tidy

__all__ = ["read_odt"]


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


def read_odt(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            parts = Parts(archive, _ODT)
            manifest = "META-INF/manifest.xml"
            if manifest in parts.names and b"encryption-data" in parts.read(manifest):
                raise PermanentError(
                    "the OpenDocument text is password-protected: save it without a password "
                    "and upload it again",
                    code=FailureCode.UNSUPPORTED_TYPE,
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
