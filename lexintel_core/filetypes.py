"""What a file is, decided from its first bytes and never from its name."""

from __future__ import annotations

import re

from lexintel_core.errors import FailureCode, PermanentError

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
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (0, b"8BPS\x00\x01", "a Photoshop image (.psd)"),
    (0, b"AT&TFORM", "a DjVu document"),
    (0, b"\xff\xfb", "an MP3 file"),
    (0, b"\xff\xf3", "an MP3 file"),
    (0, b"\xff\xf2", "an MP3 file"),
    (0, b"fLaC\x00", "a FLAC audio file"),
    (0, b"fLaC\x80", "a FLAC audio file"),
    (0, b"OggS\x00", "an Ogg media file"),
    (0, b"MThd\x00\x00\x00\x06", "a MIDI file"),
    (
        0,
        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c",
        "a Windows Media file (.wma/.wmv)",
    ),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska or WebM video"),
    (0, b"\x7fELF", "an executable"),
    (0, b"\xca\xfe\xba\xbe", "an executable"),
    (0, b"\xfe\xed\xfa\xce", "an executable"),
    (0, b"\xfe\xed\xfa\xcf", "an executable"),
    (0, b"\xce\xfa\xed\xfe", "an executable"),
    (0, b"\xcf\xfa\xed\xfe", "an executable"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (0, b"MSCF\x00\x00\x00\x00", "a Windows cabinet archive (.cab)"),
    (257, b"ustar\x00", "a tar archive"),
    (257, b"ustar ", "a tar archive"),
    (0, b"SQLite format 3\x00", "a SQLite database"),
    (0, b"!BDN", "an Outlook data file (.pst)"),
    (0, b"wOFF", "a web font"),
    (0, b"wOF2", "a web font"),
    (0, b"%!PS", "a PostScript file"),
)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORDPERFECT_MAGIC = b"\xffWPC"
_RTF_MAGIC = b"{\\rtf"
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_FTYP_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")

# OLE2 (compound file) stream and storage names of Office formats other than Word, as what
# they are; "WordDocument" is a Word 97-2003 document.
_OLE_KINDS: tuple[tuple[str, str], ...] = (
    ("EncryptedPackage", "a password-protected Office document (remove the password first)"),
    ("Workbook", "an Excel workbook (.xls)"),
    ("Book", "an Excel workbook (.xls)"),
    ("PowerPoint Document", "a PowerPoint presentation (.ppt)"),
    ("__substg1.0_", "an Outlook message (.msg)"),
    ("VisioDocument", "a Visio drawing (.vsd)"),
)
_OLE_ENTRY_SIZE = 128
_RIFF_KINDS = {b"WAVE": "a WAV audio file", b"AVI ": "an AVI video", b"WEBP": "a WebP image"}
# BITMAPINFOHEADER sizes (core, v1-v5).
_BMP_HEADERS = frozenset({12, 40, 52, 56, 64, 108, 124})

# The first entry of an OpenDocument package is its uncompressed `mimetype`: this prefix and
# one of these kinds (None: a text we read).
_ODF_PREFIX = "application/vnd.oasis.opendocument."
_ODF_KINDS = {
    "text": None,
    "text-template": None,  # .ott
    "spreadsheet": "an OpenDocument spreadsheet (.ods)",
    "spreadsheet-template": "an OpenDocument spreadsheet template (.ots)",
    "presentation": "an OpenDocument presentation (.odp)",
    "presentation-template": "an OpenDocument presentation template (.otp)",
    "graphics": "an OpenDocument drawing (.odg)",
    "formula": "an OpenDocument formula (.odf)",
    "chart": "an OpenDocument chart (.odc)",
    "image": "an OpenDocument image (.odi)",
    "base": "an OpenDocument database (.odb)",
    "text-master": "an OpenDocument master document (.odm)",
}
NOT_A_DOCUMENT_ZIP = "a ZIP archive that is not a Word or OpenDocument text document"

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
        f"unsupported file type: {what}; LexIntel reads PDF, Word (.docx, .doc), WordPerfect "
        "(.wpd), RTF, OpenDocument text (.odt), HTML and plain text",
        code=FailureCode.UNSUPPORTED_TYPE,
    )


def odf_content_type(mimetype: str) -> str:
    """ODT for the `mimetype` of an OpenDocument text; PermanentError(UNSUPPORTED) naming
    any other kind of package."""
    mimetype = mimetype.strip()
    if mimetype.startswith(_ODF_PREFIX):
        kind = mimetype.removeprefix(_ODF_PREFIX)
        if kind in _ODF_KINDS:
            what = _ODF_KINDS[kind]
            if what is None:
                return ODT
            raise unsupported(what)
        raise unsupported(f"an OpenDocument file of type {mimetype[:80]}")
    if mimetype == "application/epub+zip":
        raise unsupported("an EPUB e-book")
    raise unsupported(NOT_A_DOCUMENT_ZIP)


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _ole_names(head: bytes) -> set[str]:
    """Names of the OLE2 directory entries found in `head`: entries are 128 bytes, aligned to
    128 in the file (sectors are 512 or 4096 bytes after a 512-byte header), each a UTF-16LE
    name with its byte length (terminating NUL included) at 64 and its type at 66."""
    names = set()
    for offset in range(512, len(head) - 66, _OLE_ENTRY_SIZE):  # the name, its size and type
        size, kind = _u16(head, offset + 64), head[offset + 66]
        if not (4 <= size <= 64 and size % 2 == 0 and kind in (1, 2, 5)):
            continue
        try:
            name = head[offset : offset + size - 2].decode("utf-16-le")
        except UnicodeDecodeError:
            continue
        # Property-set streams start with a control character ("\x05SummaryInformation").
        if (
            head[offset + size - 2 : offset + size] == b"\x00\x00"
            and name.lstrip("\x01\x02\x03\x05").isprintable()
        ):
            names.add(name)
    return names


def _ole_content_type(head: bytes) -> str:
    names = _ole_names(head)
    if "WordDocument" in names:
        return DOC
    for name, what in _OLE_KINDS:
        if any(entry.startswith(name) if name.endswith("_") else entry == name for entry in names):
            raise unsupported(what)
    # Its directory lies beyond the head: a .doc the converter will confirm (or refuse).
    return DOC


def _zip_content_type(head: bytes) -> str:
    """From the first entries of a ZIP: ODT when it starts with an OpenDocument text's
    `mimetype`, DOCX when it names a `word/` part. The whole archive's directory decides in
    the end (office.zip_content_type)."""
    if head.startswith(b"PK\x03\x04") and head[30:38] == b"mimetype" and _u16(head, 8) == 0:
        start = 30 + _u16(head, 26) + _u16(head, 28)
        return odf_content_type(head[start : start + min(_u32(head, 18), 200)].decode("latin-1"))
    if b"word/" in head:
        return DOCX
    if b"xl/workbook" in head:
        raise unsupported("an Excel workbook (.xlsx)")
    if b"ppt/presentation" in head:
        raise unsupported("a PowerPoint presentation (.pptx)")
    if b"content.xml" in head and b"META-INF/" in head:
        return ODT  # an OpenDocument package whose mimetype is not first: the archive decides
    raise unsupported(NOT_A_DOCUMENT_ZIP)


def _known_binary(head: bytes) -> str | None:
    """What `head` is when it is one of the binary formats we name but do not read."""
    for offset, magic, what in _SIGNATURES:
        if head.startswith(magic, offset):
            return what
    if head.startswith(b"RIFF"):
        return _RIFF_KINDS.get(head[8:12])  # any other is refused as unknown binary data
    if head.startswith(b"ID3") and head[3:4] in (b"\x02", b"\x03", b"\x04"):
        return "an MP3 file"
    if _BZIP2.match(head):
        return "a bzip2 archive"
    if head[4:8] == b"ftyp":
        if head[8:12] in _FTYP_IMAGE_BRANDS:
            return "a HEIC or AVIF image"
        return "an audio or video file (MP4, MOV, M4A)"
    # Two-byte magics are only trusted with the header fields that follow them.
    if head.startswith(b"BM") and head[6:10] == bytes(4) and _u32(head, 14) in _BMP_HEADERS:
        return "a BMP image"
    icon = head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")
    if icon and head[4:5] not in (b"", b"\x00") and head[5:6] == b"\x00":  # 1-255 images
        return "an icon (.ico)"
    if head.startswith(b"MZ") and len(head) >= 64:
        pe = _u32(head, 0x3C)
        if head[pe : pe + 4] == b"PE\x00\x00" or b"This program cannot be run" in head[:512]:
            return "a Windows program (.exe/.dll)"
    return None


def detect_content_type(head: bytes) -> str:
    """The content type of a file from its first bytes (ideally HEAD_SIZE of them).

    Returns PDF, DOCX, DOC, WPD, RTF, ODT, HTML or TEXT (Markdown is text). Raises
    PermanentError(UNSUPPORTED) naming the format for binary formats we know and do not read
    (images, media, archives, executables, other Office files: .xls, .ppt, .msg, .xlsx,
    .ods...) and for unknown bytes with the control characters of binary data: random
    garbage is refused rather than indexed as mojibake. Pure: it looks at `head` only, so a
    ZIP is judged by its first entries and an OLE2 file by the directory entries in the
    head (a .doc when they are not there); the extraction confirms against the whole file.
    """
    if _PDF_HEADER.search(head, 0, 1024):  # readers accept junk before the header, so do we
        return PDF
    if head.startswith(_OLE_MAGIC):
        return _ole_content_type(head)
    if head.startswith(_WORDPERFECT_MAGIC):
        if head[9:10] == b"\x16":
            raise unsupported("a WordPerfect graphic (.wpg)")
        return WPD
    if head.startswith(_RTF_MAGIC):
        return RTF
    what = _known_binary(head)
    if what is not None:
        raise unsupported(what)
    if head.startswith(_ZIP_MAGICS):
        return _zip_content_type(head)
    encoding = text_encoding_from_bytes(head)
    if encoding is None and _looks_binary(head):
        raise unsupported("binary data of an unknown kind")
    sample = head[:4096].decode(encoding or "latin-1", errors="ignore")
    return HTML if _looks_html(sample) else TEXT
