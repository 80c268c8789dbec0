"""RTF, with a tokenizer of our own rather than striprtf: striprtf drops footnotes, headers
and page breaks, and its hyperlink regex is cubic on hostile input (70 KB of unclosed
`{\\field{\\*\\fldinst{HYPERLINK "` took 90 s). Ours is linear: destinations we do not show
(pictures, font tables, field codes...) are skipped by a brace scan in C. Pages from `\\page`
and `\\pagebb`; code pages from `\\ansicpg`, font `\\fcharset`/`\\cpg` and `\\u`."""

from __future__ import annotations

import codecs
import re

from lexintel_core.errors import PermanentError
from lexintel_jobs.extraction.word import Pages, damaged, roman, tidy

__all__ = ["read_rtf"]


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
