"""What a file is, decided from its first bytes and never from its name."""

from __future__ import annotations

import re

from lexintel_core.errors import ErrorCode, PermanentError

PDF = "application/pdf"
TEXT = "text/plain"  # Markdown is folded in here: its markup is readable as it is
HTML = "text/html"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOC = "application/msword"  # Word 97-2003
WPD = "application/vnd.wordperfect"
RTF = "application/rtf"
ODT = "application/vnd.oasis.opendocument.text"

# How many leading bytes detect_content_type wants to see (it copes with fewer).
HEAD_SIZE = 64 * 1024

# (offset, magic, what it is): binary formats we know and do not read.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"RIFF", "a RIFF media file (WebP, WAV, AVI)"),
    (4, b"ftyp", "an audio or video file"),
    (0, b"ID3\x03", "an MP3 file"),
    (0, b"ID3\x04", "an MP3 file"),
    (0, b"OggS", "an Ogg media file"),
    (0, b"\x7fELF", "an executable"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (0, b"SQLite format 3\x00", "a SQLite database"),
    (0, b"%!PS", "a PostScript file"),
    (0, b"{\\rtf", "an RTF document (save it as .docx or PDF)"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (save it as .docx or PDF)"),
)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)

# Control bytes that plain text in an ASCII-compatible encoding does not contain; tab,
# newlines, form feed and ESC (terminal colours) are missing on purpose.
_BINARY_BYTES = bytes([*range(0x00, 0x09), 0x0E, *range(0x0F, 0x1B), *range(0x1C, 0x20)])

_PDF_HEADER = re.compile(rb"%PDF-\d")
_LEADING_NOISE = re.compile(r"(?:\s+|<!--.*?-->|<\?xml[^>]*>)*", re.DOTALL)
_HTML_START = re.compile(r"<!doctype\s+html|<(?:html|head|body)[\s>]")
_HTML_TAG = re.compile(r"<(?:html|head|body|title|meta|p|div|span|table|br|h[1-6]|a)[\s/>]")


def bom_encoding(data: bytes) -> str | None:
    """The codec named by a byte order mark at the start of `data` (it strips the mark)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    return None


def utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a BOM, recognised by the zero high bytes of Latin text."""
    sample = data[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def text_encoding_from_bytes(data: bytes) -> str | None:
    """The encoding the bytes announce by themselves (BOM, or UTF-16 without one)."""
    return bom_encoding(data) or utf16_without_bom(data)


def _looks_binary(head: bytes) -> bool:
    sample = head[:HEAD_SIZE]
    if not sample:
        return False
    controls = len(sample) - len(sample.translate(None, _BINARY_BYTES))
    # Random bytes are ~10% controls; text may carry a stray NUL or two.
    return controls > max(0.02 * len(sample), 3)


def _looks_html(sample: str) -> bool:
    lowered = sample.lower()
    start = _LEADING_NOISE.match(lowered)
    lowered = lowered[start.end() if start else 0 :]
    if _HTML_START.match(lowered):
        return True
    return lowered.startswith("<") and _HTML_TAG.search(lowered) is not None


def unsupported(what: str) -> PermanentError:
    return PermanentError(
        f"unsupported file type: {what}; LexIntel reads PDF, Word (.docx), HTML and plain text",
        code=ErrorCode.UNSUPPORTED,
    )


def detect_content_type(head: bytes) -> str:
    """The content type of a file from its first bytes (ideally HEAD_SIZE of them).

    Returns PDF, DOCX, HTML or TEXT (Markdown is text). Raises PermanentError(UNSUPPORTED)
    for binary formats: known ones (images, archives, executables, legacy .doc...), a ZIP
    that is not a Word document, and unknown bytes with the control characters of binary
    data: random garbage is refused rather than indexed as mojibake. From the head alone a
    ZIP counts as DOCX when it names a `word/` part; extract_file confirms this against the
    archive's directory.
    """
    if _PDF_HEADER.search(head, 0, 1024):  # readers accept junk before the header, so do we
        return PDF
    for offset, magic, what in _SIGNATURES:
        if head.startswith(magic, offset):
            raise unsupported(what)
    if head.startswith(_ZIP_MAGICS):
        if b"word/" in head:
            return DOCX
        raise unsupported("a ZIP archive that is not a Word document")
    encoding = text_encoding_from_bytes(head)
    if encoding is None and _looks_binary(head):
        raise unsupported("binary data of an unknown kind")
    sample = head[:4096].decode(encoding or "latin-1", errors="ignore")
    return HTML if _looks_html(sample) else TEXT
