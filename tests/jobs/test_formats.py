"""Legacy and office formats: detection from the head, the ZIP directory, and the text of
.docx, .doc, .wpd, .rtf and .odt, page by page. No database needed."""

from __future__ import annotations

import os
import shutil
import stat
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK

from lexintel_core.errors import FailureCode, PermanentError
from lexintel_core.filetypes import (
    DOC,
    DOCX,
    HEAD_SIZE,
    ODT,
    RTF,
    TEXT,
    WPD,
    detect_content_type,
    unsupported,
)
from lexintel_jobs.extraction.office import read_office, zip_content_type
from lexintel_jobs.extraction.rtf import read_rtf
from tests.corpus import corpus_path

SETTLEMENT_WORDS = ["Harrowgate", "Quenby", "Vermont", "confidential"]
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _refusal(head: bytes) -> str:
    with pytest.raises(PermanentError) as caught:
        detect_content_type(head)
    assert caught.value.code == FailureCode.UNSUPPORTED_TYPE
    return caught.value.message


def _read(path: Path, content_type: str, timeout: float = 30) -> tuple[str, list[str]]:
    return read_office(path, content_type, timeout_seconds=timeout)


def _failure(path: Path, content_type: str, timeout: float = 30) -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        _read(path, content_type, timeout)
    return caught.value


# Detection from the head


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("settlement.doc", DOC),
        ("settlement.rtf", RTF),
        ("settlement.odt", ODT),
        ("court-order.wpd", WPD),
    ],
)
def test_corpus_formats_are_detected(name: str, expected: str) -> None:
    head = corpus_path("formats", name).read_bytes()[:HEAD_SIZE]
    assert detect_content_type(head) == expected


def _ole(*names: str, sector: int = 512) -> bytes:
    """An OLE2 compound file head whose directory names `names` (after the root)."""
    entries = b""
    for index, name in enumerate(["Root Entry", *names]):
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        kind = 5 if index == 0 else 2
        entry = encoded.ljust(64, b"\x00") + len(encoded).to_bytes(2, "little") + bytes([kind])
        entries += entry.ljust(128, b"\xff")
    return OLE_MAGIC + bytes(504) + bytes(sector - 512) + entries


def test_ole_word_document_is_doc() -> None:
    assert detect_content_type(_ole("WordDocument", "1Table", "\x05SummaryInformation")) == DOC
    assert detect_content_type(_ole("1Table", "WordDocument", sector=4096)) == DOC
    # A Word document with an embedded spreadsheet names both.
    assert detect_content_type(_ole("Workbook", "ObjectPool", "WordDocument")) == DOC
    # Its directory beyond the head: accepted, the converter decides.
    assert detect_content_type(OLE_MAGIC + bytes(24)) == DOC


@pytest.mark.parametrize(
    ("names", "named"),
    [
        (("Workbook", "\x05SummaryInformation"), "Excel workbook (.xls)"),
        (("Book",), "Excel workbook (.xls)"),
        (("PowerPoint Document", "Current User"), "PowerPoint presentation (.ppt)"),
        (("__substg1.0_0037001F", "__properties_version1.0"), "Outlook message (.msg)"),
        (("EncryptedPackage", "EncryptionInfo"), "password-protected"),
    ],
)
def test_ole_files_that_are_not_word_are_refused_by_name(
    names: tuple[str, ...], named: str
) -> None:
    message = _refusal(_ole(*names))
    assert named in message
    assert "LexIntel reads PDF, Word (.docx, .doc), WordPerfect (.wpd), RTF" in message


def _bmp() -> bytes:
    header = b"BM" + (70).to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little")
    return header + (40).to_bytes(4, "little") + bytes(52)


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (b"\xff\xfb\x90\x64" + bytes(60), "MP3"),
        (b"\xff\xf3\x48\xc4" + bytes(60), "MP3"),
        (b"ID3\x02\x00\x00" + bytes(60), "MP3"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + bytes(40), "Windows Media"),
        (b"fLaC\x00\x00\x00\x22" + bytes(40), "FLAC"),
        (b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(40), "WAV"),
        (b"RIFF\x24\x08\x00\x00AVI LIST" + bytes(40), "AVI"),
        (b"RIFF\x24\x08\x00\x00WEBPVP8 " + bytes(40), "WebP"),
        (b"MThd\x00\x00\x00\x06\x00\x01" + bytes(40), "MIDI"),
        (_bmp(), "BMP"),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10" + bytes(40), "icon"),
        (
            b"MZ\x90\x00" + bytes(56) + (64).to_bytes(4, "little") + b"PE\x00\x00" + bytes(40),
            ".exe",
        ),
        (b"BZh91AY&SY" + bytes(40), "bzip2"),
        (bytes(4) + b"ftypheic" + bytes(40), "HEIC"),
        (bytes(4) + b"ftypisom" + bytes(40), "video"),
        (b"\x1a\x45\xdf\xa3" + bytes(40), "WebM"),
        (b"\xffWPC\x10\x00\x00\x00\x01\x16" + bytes(40), "WordPerfect graphic"),
        (bytes(257) + b"ustar\x0000" + bytes(40), "tar"),
    ],
)
def test_known_binary_formats_are_refused_by_name(head: bytes, named: str) -> None:
    assert named in _refusal(head)


@pytest.mark.parametrize(
    "text",
    [b"BMW Financial Services v. Doe\n", b"MZ Holdings LLC, Plaintiff,\n", b"RIFFLE v. STATE\n"],
)
def test_text_that_starts_like_a_binary_magic_is_text(text: bytes) -> None:
    assert detect_content_type(text * 20) == TEXT


def _zip(path: Path, entries: Mapping[str, bytes | str], *, stored: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            method = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return path


def _odf(path: Path, mimetype: str, entries: dict[str, bytes | str] | None = None) -> Path:
    files: dict[str, bytes | str] = {"mimetype": mimetype, **(entries or {})}
    files.setdefault("content.xml", "<office:document-content/>")
    return _zip(path, files, stored=("mimetype",))


def test_zip_heads(tmp_path: Path) -> None:
    odt = _odf(tmp_path / "a.odt", ODT)
    assert detect_content_type(odt.read_bytes()) == ODT
    ods = _odf(tmp_path / "a.ods", "application/vnd.oasis.opendocument.spreadsheet")
    assert "OpenDocument spreadsheet (.ods)" in _refusal(ods.read_bytes())
    epub = _odf(tmp_path / "a.epub", "application/epub+zip")
    assert "EPUB" in _refusal(epub.read_bytes())
    xlsx = _zip(tmp_path / "a.xlsx", {"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "x"})
    assert "Excel workbook (.xlsx)" in _refusal(xlsx.read_bytes())
    plain = _zip(tmp_path / "a.zip", {"notes.txt": "hello"})
    assert "not a Word or OpenDocument text" in _refusal(plain.read_bytes())


def test_unsupported_lists_what_lexintel_reads() -> None:
    message = unsupported("a JPEG image").message
    for name in ("PDF", ".docx", ".doc", ".wpd", "RTF", ".odt", "HTML", "plain text"):
        assert name in message


# The ZIP directory


def _docx_from_python_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_paragraph("Motion to dismiss")
    document.save(str(path))
    return path


def test_zip_content_type(tmp_path: Path) -> None:
    assert zip_content_type(_docx_from_python_docx(tmp_path / "a.docx")) == DOCX
    assert zip_content_type(corpus_path("formats", "settlement.odt")) == ODT

    def refused(path: Path) -> str:
        with pytest.raises(PermanentError) as caught:
            zip_content_type(path)
        assert caught.value.code == FailureCode.UNSUPPORTED_TYPE
        return caught.value.message

    rels = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats'
        '.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
    )
    xlsx = {"_rels/.rels": rels, "xl/workbook.xml": "<workbook/>"}
    assert "Excel workbook (.xlsx)" in refused(_zip(tmp_path / "a.xlsx", xlsx))
    ods = _odf(tmp_path / "a.ods", "application/vnd.oasis.opendocument.spreadsheet")
    assert "(.ods)" in refused(ods)
    assert "not a Word" in refused(_zip(tmp_path / "b.zip", {"a.txt": "x"}))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + os.urandom(200))
    assert "damaged" in refused(broken)


# .doc (antiword) and .wpd (wpd2text)


@pytest.mark.parametrize("name", ["settlement.doc", "settlement.rtf", "settlement.odt"])
def test_settlement_in_every_format(name: str) -> None:
    path = corpus_path("formats", name)
    engine, pages = _read(path, detect_content_type(path.read_bytes()[:HEAD_SIZE]))
    assert engine == {"doc": "antiword", "rtf": "rtf", "odt": "odt"}[name[-3:]]
    assert len(pages) == 1
    for word in SETTLEMENT_WORDS:
        assert word in pages[0]
    assert "SETTLEMENT AGREEMENT AND MUTUAL RELEASE" in pages[0]
    # One line: antiword does not wrap (-w 0).
    assert 'made between Harrowgate Logistics LLC ("Harrowgate") and the Quenby' in pages[0]
    assert "\ufffd" not in pages[0]


def test_doc_characters_beyond_ascii(tmp_path: Path) -> None:
    # Same-length edits of the UTF-16 text stream of the real file.
    data = corpus_path("formats", "settlement.doc").read_bytes()
    for old, new in [("Vermont", "Vérmönt"), ("Freight", "Fr€ight"), ("March 3", "March§3")]:
        encoded = old.encode("utf-16-le")
        assert encoded in data
        data = data.replace(encoded, new.encode("utf-16-le"))
    path = tmp_path / "accents.doc"
    path.write_bytes(data)
    _, [text] = _read(path, DOC)
    assert "State of Vérmönt." in text
    assert "Quenby Fr€ight Cooperative" in text
    assert "March§3" in text


def test_wpd_court_order_reads_clean() -> None:
    engine, [text] = _read(corpus_path("formats", "court-order.wpd"), WPD)
    assert engine == "wpd2text"
    assert "SUPREME COURT OF INDIANA" in text
    assert "Ind. Code § 35-42-1-1" in text
    assert "Johnson’s trial for the murder of Steven Strycker" in text
    assert "We thus affirm the judgment of the trial court." in text
    assert "\ufffd" not in text
    assert not [char for char in text if ord(char) < 32 and char not in "\t\n"]


@pytest.mark.parametrize(
    ("content_type", "name", "package"),
    [(DOC, "settlement.doc", "antiword"), (WPD, "court-order.wpd", "libwpd-tools")],
)
def test_missing_converter_names_its_package(
    content_type: str, name: str, package: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    error = _failure(corpus_path("formats", name), content_type)
    assert error.code == FailureCode.CONVERTER_UNAVAILABLE
    assert f"package {package}" in error.message


@pytest.mark.parametrize(
    ("content_type", "program", "data"),
    [
        (DOC, "antiword", OLE_MAGIC + os.urandom(4096)),
        (WPD, "wpd2text", b"\xffWPC" + bytes(12) + os.urandom(4096)),
    ],
)
def test_converter_refusal_is_unsupported_with_its_reason(
    content_type: str, program: str, data: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(data)
    error = _failure(path, content_type)
    assert error.code == FailureCode.UNSUPPORTED_TYPE
    assert error.message.startswith(f"{program} cannot read this file: ")
    assert len(error.message) > len(f"{program} cannot read this file: ") + 5
    assert str(tmp_path) not in error.message  # no worker paths in a user's message


def test_converter_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "antiword"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(fake.parent))
    started = time.perf_counter()
    error = _failure(corpus_path("formats", "settlement.doc"), DOC, timeout=0.5)
    assert error.code == FailureCode.TIMEOUT
    assert time.perf_counter() - started < 10


# DOCX

_NS = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
)
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"


def _p(*runs: str, props: str = "") -> str:
    properties = f"<w:pPr>{props}</w:pPr>" if props else ""
    return f"<w:p>{properties}{''.join(runs)}</w:p>"


def _r(text: str = "", extra: str = "") -> str:
    run_text = f'<w:t xml:space="preserve">{text}</w:t>' if text else ""
    return f"<w:r>{extra}{run_text}</w:r>"


def _docx(
    path: Path, body: str, parts: Mapping[str, tuple[str, str, str | bytes]] | None = None
) -> Path:
    """A .docx whose body is `body`; `parts`: relationship id: (type, name, content)."""
    parts = parts or {}
    relationships = "".join(
        f'<Relationship Id="{rid}" Type="{_REL}{kind}" Target="{name}"/>'
        for rid, (kind, name, _) in parts.items()
    )
    files: dict[str, bytes | str] = {
        "[Content_Types].xml": "<Types/>",
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{_REL}officeDocument" Target="word/document.xml"/>'
            "</Relationships>"
        ),
        "word/document.xml": f"<w:document {_NS}><w:body>{body}<w:sectPr/></w:body></w:document>",
        "word/_rels/document.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f"{relationships}</Relationships>"
        ),
    }
    for _, name, content in parts.values():
        files[f"word/{name}"] = content
    return _zip(path, files)


def _pages(path: Path) -> list[str]:
    engine, pages = _read(path, DOCX)
    assert engine == "docx"
    return pages


def test_docx_page_breaks(tmp_path: Path) -> None:
    body = "".join(
        [
            _p(_r("Alpha one."), _r(extra='<w:br w:type="page"/>')),
            # Word marks the same break again where it laid the page out: not a new page.
            _p(_r("Bravo two.", extra="<w:lastRenderedPageBreak/>")),
            _p(_r("Bravo more. "), _r("Charlie three.", extra="<w:lastRenderedPageBreak/>")),
            _p(_r("Delta four."), props="<w:pageBreakBefore/>"),
            _p(_r("Delta more."), props='<w:pageBreakBefore w:val="false"/>'),
            _p(_r("Echo five."), props='<w:sectPr><w:type w:val="nextPage"/></w:sectPr>'),
            _p(_r("Foxtrot six.", extra="<w:lastRenderedPageBreak/>")),
            _p(_r("Foxtrot more."), props='<w:sectPr><w:type w:val="continuous"/></w:sectPr>'),
            _p(_r("Golf seven."), props="<w:sectPr/>"),  # no type: next page
            _p(_r("Hotel eight.")),
        ]
    )
    pages = _pages(_docx(tmp_path / "breaks.docx", body))
    assert pages == [
        "Alpha one.",
        "Bravo two.\n\nBravo more.",
        "Charlie three.",
        "Delta four.\n\nDelta more.\n\nEcho five.",
        "Foxtrot six.\n\nFoxtrot more.\n\nGolf seven.",
        "Hotel eight.",
    ]


def test_docx_page_break_in_a_table_row_moves_the_row(tmp_path: Path) -> None:
    def row(*cells: str) -> str:
        return "<w:tr>" + "".join(f"<w:tc>{cell}</w:tc>" for cell in cells) + "</w:tr>"

    table = (
        "<w:tbl>"
        + row(_p(_r("Party")), _p(_r("Role")))
        + row(_p(_r("Acme", extra="<w:lastRenderedPageBreak/>")), _p(_r("Plaintiff")))
        + "</w:tbl>"
    )
    pages = _pages(_docx(tmp_path / "table.docx", _p(_r("Parties:")) + table))
    assert pages == ["Parties:\n\nParty\tRole", "Acme\tPlaintiff"]


def test_python_docx_page_break_and_headers(tmp_path: Path) -> None:
    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = "CONFIDENTIAL — Case No. 21-cv-0042"
    section.footer.paragraphs[0].text = "Settlement draft"
    document.add_paragraph("First page text.")
    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    document.add_paragraph("Second page text.")
    path = tmp_path / "generated.docx"
    document.save(str(path))
    assert _pages(path) == [
        "CONFIDENTIAL — Case No. 21-cv-0042\n\nFirst page text.\n\nSettlement draft",
        "Second page text.",
    ]


def test_docx_notes_comments_headers_text_boxes(tmp_path: Path) -> None:
    w = f"<w:{{0}} {_NS}>{{1}}</w:{{0}}>"
    footnotes = w.format(
        "footnotes",
        '<w:footnote w:type="separator" w:id="-1">'
        + _p(_r(extra="<w:separator/>"))
        + "</w:footnote>"
        '<w:footnote w:id="1">'
        + _p(_r(extra="<w:footnoteRef/>"), _r(" See Aubrey v. State."))
        + "</w:footnote>"
        '<w:footnote w:id="2">' + _p(_r("Never referred to.")) + "</w:footnote>",
    )
    endnotes = w.format(
        "endnotes", '<w:endnote w:id="1">' + _p(_r("Endnote text.")) + "</w:endnote>"
    )
    comments = w.format(
        "comments",
        '<w:comment w:id="0" w:author="Jane Roe">' + _p(_r("Check this date.")) + "</w:comment>"
        '<w:comment w:id="7">' + _p(_r("Unanchored remark.")) + "</w:comment>",
    )
    header = w.format("hdr", _p(_r("IN THE SUPREME COURT")))
    footer = w.format("ftr", _p(_r("Page "), _r("1")))
    text_box = (
        "<mc:AlternateContent><mc:Choice Requires='wps'><w:drawing><w:txbxContent>"
        + _p(_r("Boxed note.", extra="<w:lastRenderedPageBreak/>"))
        + "</w:txbxContent></w:drawing></mc:Choice><mc:Fallback>"
        + _p(_r("Boxed note."))
        + "</mc:Fallback></mc:AlternateContent>"
    )
    body = (
        _p(_r("The court held."), _r(extra='<w:footnoteReference w:id="1"/>'))
        + _p(_r("Signed on May 1.", extra=text_box), _r(extra='<w:commentReference w:id="0"/>'))
        + _p(_r("Kept "), "<w:del><w:r><w:delText>deleted </w:delText></w:r></w:del>", _r("text."))
        + _p(_r(extra="<w:instrText> PAGE </w:instrText>"), _r("Field result."))
        + _p(
            _r("Second page.", extra="<w:lastRenderedPageBreak/>"),
            _r(extra='<w:endnoteReference w:id="1"/>'),
        )
    )
    parts = {
        "rId1": ("footnotes", "footnotes.xml", footnotes),
        "rId2": ("endnotes", "endnotes.xml", endnotes),
        "rId3": ("comments", "comments.xml", comments),
        "rId4": ("header", "header1.xml", header),
        "rId5": ("header", "header2.xml", header),  # a second section's, the same: once
        "rId6": ("footer", "footer1.xml", footer),
    }
    pages = _pages(_docx(tmp_path / "notes.docx", body, parts))
    assert pages == [
        "IN THE SUPREME COURT\n\n"
        "The court held.\n\nBoxed note.\n\nSigned on May 1.\n\nKept text.\n\nField result.\n\n"
        "[1] See Aubrey v. State.\n\n[Comment by Jane Roe] Check this date.\n\n"
        "Page 1",
        "Second page.\n\n[i] Endnote text.\n\n[Comment] Unanchored remark.",
    ]


def _mht() -> str:
    return (
        'MIME-Version: 1.0\nContent-Type: multipart/related; boundary="b"\n\n--b\n'
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        "<html><body><p>Imported =C2=A7 4 exhibit text.</p></body></html>\n--b--\n"
    )


def _nested_docx(tmp_path: Path) -> bytes:
    document = docx.Document()
    document.add_paragraph("Imported exhibit text.")
    document.save(str(tmp_path / "nested.docx"))
    return (tmp_path / "nested.docx").read_bytes()


@pytest.mark.parametrize("kind", ["html", "mht", "txt", "docx", "rtf"])
def test_docx_alt_chunk(kind: str, tmp_path: Path) -> None:
    content: str | bytes = {
        "html": "<html><body><p>Imported <b>exhibit</b> text.</p></body></html>",
        "mht": _mht(),
        "txt": "Imported exhibit text.",
        "rtf": r"{\rtf1\ansi Imported {\b exhibit} text.\par}",
    }.get(kind) or _nested_docx(tmp_path)
    body = _p(_r("Before.")) + '<w:altChunk r:id="rId9"/>' + _p(_r("After."))
    files = {"rId9": ("aFChunk", f"chunk.{kind}", content)}
    expected = "Imported § 4 exhibit text." if kind == "mht" else "Imported exhibit text."
    assert _pages(_docx(tmp_path / "chunk.docx", body, files)) == [
        f"Before.\n\n{expected}\n\nAfter."
    ]


def test_docx_bomb_in_a_notes_part(tmp_path: Path) -> None:
    parts = {"rId1": ("comments", "comments.xml", "")}
    path = _docx(tmp_path / "bomb.docx", _p(_r("Body.")), parts)
    with (
        zipfile.ZipFile(path) as source,
        zipfile.ZipFile(tmp_path / "b.docx", "w", compression=zipfile.ZIP_DEFLATED) as copy,
    ):
        for info in source.infolist():
            if info.filename != "word/comments.xml":
                copy.writestr(info, source.read(info))
        with copy.open("word/comments.xml", "w", force_zip64=True) as part:
            for _ in range(60):  # 60 MB of spaces: deflates ~1000:1
                part.write(b" " * (1024 * 1024))
    assert (tmp_path / "b.docx").stat().st_size < 1024 * 1024
    assert _failure(tmp_path / "b.docx", DOCX).code == FailureCode.TOO_LARGE


# RTF


def _rtf(body: str) -> bytes:
    return (
        r"{\rtf1\ansi\ansicpg1250\deff0{\fonttbl{\f0\froman\fcharset238 Times;}"
        r"{\f1\fswiss\fcharset204 Arial;}}{\colortbl;\red0\green0\blue0;}"
        r"{\*\generator Hand;}{\info{\title Secret title}}" + body + "}"
    ).encode("ascii")


def test_rtf_text_encodings_and_destinations() -> None:
    body = (
        r"{\header \pard Header line\par}"
        r"\pard P\'f8erov and \'8e\'ef\'e1r\par"  # cp1250 from \ansicpg1250
        r"{\f1 \'cf\'f0\'e8\'e3\'ee\'e2\'ee\'f0}\par"  # cp1251 from \fcharset204
        r"\uc1\u8364\'80 sign, \u-10179?\u-8704? face\par"
        r"{\pict\wmetafile8 0123456789abcdef}"
        r"{\field{\*\fldinst HYPERLINK \"https://example.com\"}{\fldrslt Link text}}\par"
        r"{\*\bkmkstart x}{\*\unknowndest hidden}Cite\chftn{\footnote\pard\chftn  Footnote body.}"
        r" \{braces\}\par"
        r"{\*\atnid JR}{\*\atnauthor Jane Roe}\chatn{\*\annotation\pard Comment body.}"
        r"{\deleted struck }kept\par"
        r"\page Second page\par"
        r"\pard\pagebb Third page\par"
    )
    pages = read_rtf(_rtf(body))
    assert pages == [
        "Header line\n\n"
        "Přerov and Žďár\n\nПриговор\n\n€ sign, \U0001f600 face\n\nLink text\n\n"
        "Cite {braces}\n\nkept\n\n"
        "[1] Footnote body.\n\n[Comment by Jane Roe] Comment body.",
        "Second page",
        "Third page",
    ]


def test_rtf_corpus_and_hostile_inputs() -> None:
    started = time.perf_counter()
    field = r'{\field{\*\fldinst{HYPERLINK "a" x '
    assert read_rtf(b"{\\rtf1\\ansi " + field.encode() * 4000 + b"}") == [""]
    assert time.perf_counter() - started < 5  # striprtf needs minutes for this

    with pytest.raises(PermanentError) as caught:
        read_rtf(b"{\\rtf1 " + b"{" * 100_000)
    assert caught.value.code == FailureCode.UNSUPPORTED_TYPE
    with pytest.raises(PermanentError):
        read_rtf(b"not rtf at all")
    # Unbalanced and truncated input still gives its text.
    assert read_rtf(b"{\\rtf1 Hello}} world\\") == ["Hello"]


# ODT

_ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"'
)


def test_odt_pages_notes_headers(tmp_path: Path) -> None:
    styles = (
        f"<office:document-styles {_ODF_NS}><office:styles>"
        '<style:style style:name="Chapter" style:family="paragraph">'
        '<style:paragraph-properties fo:break-before="page"/></style:style></office:styles>'
        '<office:master-styles><style:master-page style:name="Standard">'
        "<style:header><text:p>Case 21-0042</text:p></style:header>"
        "<style:footer><text:p>Draft</text:p></style:footer>"
        "</style:master-page></office:master-styles></office:document-styles>"
    )
    content = (
        f"<office:document-content {_ODF_NS}><office:body><office:text>"
        '<text:p>First   page<text:s text:c="3"/>text\n  wrapped<text:tab/>tab.'
        '<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation>'
        "<text:note-body><text:p>A footnote.</text:p></text:note-body></text:note></text:p>"
        "<text:tracked-changes><text:changed-region><text:deletion><text:p>Deleted.</text:p>"
        "</text:deletion></text:changed-region></text:tracked-changes>"
        "<table:table><table:table-row><table:table-cell><text:p>Party</text:p></table:table-cell>"
        "<table:table-cell><text:p>Role</text:p></table:table-cell></table:table-row></table:table>"
        "<text:soft-page-break/>"
        "<text:p>Second page.<office:annotation><dc:creator>Jane Roe</dc:creator>"
        "<dc:date>2024-01-01</dc:date><text:p>Check.</text:p></office:annotation></text:p>"
        "<text:soft-page-break/>"  # right before a style break: one break, not two
        '<text:p text:style-name="Chapter">Third page.</text:p>'
        "</office:text></office:body></office:document-content>"
    )
    path = _odf(tmp_path / "a.odt", ODT, {"styles.xml": styles, "content.xml": content})
    engine, pages = _read(path, ODT)
    assert engine == "odt"
    assert pages == [
        "Case 21-0042\n\nFirst page   text wrapped\ttab.\n\nParty\tRole\n\n"
        "[1] A footnote.\n\nDraft",
        "Second page.\n\n[Comment by Jane Roe] Check.",
        "Third page.",
    ]


def test_odt_with_password_is_refused(tmp_path: Path) -> None:
    manifest = "<manifest:manifest><manifest:encryption-data/></manifest:manifest>"
    path = _odf(tmp_path / "secret.odt", ODT, {"META-INF/manifest.xml": manifest})
    error = _failure(path, ODT)
    assert error.code == FailureCode.UNSUPPORTED_TYPE
    assert "password" in error.message
