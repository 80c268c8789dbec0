"""Text extraction: format detection, every format's text, and the child-process limits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import docx
import psutil  # type: ignore[import-untyped]
import pytest
from reportlab.lib.pdfencrypt import StandardEncryption  # type: ignore[import-untyped]
from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

from lexintel_core.chunking import PageText
from lexintel_core.coverage import TextCoverage
from lexintel_core.errors import FailureCode, PermanentError, RetryableError
from lexintel_jobs.extraction import (
    DOCX,
    HTML,
    PDF,
    TEXT,
    ExtractedDocument,
    Extractor,
    PagePlan,
    detect_content_type,
    extract_file,
)
from lexintel_jobs.extraction import child as extraction_child
from lexintel_jobs.extraction.pages import PageDone, PageResult, PageSource, Reading
from lexintel_jobs.extraction.protocol import read_frame
from lexintel_jobs.extraction.text import html_to_text
from tests.jobs.conftest import PDF_SAMPLES, corpus_entry, pdf_sample

# Files of the shared sample corpus: pdf_sample(NAME) gives the path, or skips the test (fails
# it in CI) on a clone without the corpus (tests/corpus.py).
GEOTOPO = "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf"  # 117 pages, ~7 s in pypdf
FOUR_PAGES = "004-pdflatex-4-pages/pdflatex-4-pages.pdf"
MULTICOLUMN = "026-latex-multicolumn/multicolumn.pdf"

# Extracts a path with a PDF engine: through an Extractor's child, or inline (extract_file).
Run = Callable[[Path, str], Awaitable[ExtractedDocument]]


def _extraction_children(ignore: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """Our extraction children, less those in `ignore` (other extractors' warm children)."""
    children = []
    for process in psutil.Process().children(recursive=True):
        try:
            command = " ".join(process.cmdline())
        except psutil.NoSuchProcess:  # pragma: no cover - ended while we looked
            continue
        if "lexintel_jobs.extraction.child" in command and process.pid not in ignore:
            children.append(process)
    return children


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _others() -> frozenset[int]:
    return frozenset(child.pid for child in _extraction_children())


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)  # pragma: no cover
    except psutil.NoSuchProcess:
        return True


def _make_pdf(path: Path, pages: list[str], **options: Any) -> Path:
    pdf = canvas.Canvas(str(path), **options)
    for text in pages:
        pdf.setFont("Helvetica", 12)
        for number, line in enumerate(text.split("\n")):
            pdf.drawString(72, 720 - 16 * number, line)
        pdf.showPage()
    pdf.save()
    return path


@pytest.fixture(scope="module")
async def extractor() -> AsyncIterator[Extractor]:
    extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=2)
    yield extractor
    await extractor.aclose()


@pytest.fixture(scope="module")
async def pdfium_extractor() -> AsyncIterator[Extractor]:
    extractor = Extractor(
        timeout_seconds=60, memory_limit_mb=1024, max_concurrency=2, pdf_engine="pypdfium2"
    )
    yield extractor
    await extractor.aclose()


@pytest.fixture(params=["child", "inline"])
def run(request: pytest.FixtureRequest, extractor: Extractor, pdfium_extractor: Extractor) -> Run:
    async def run(path: Path, engine: str = "pypdf") -> ExtractedDocument:
        if request.param == "inline":
            return extract_file(path, pdf_engine=engine)
        return await (extractor if engine == "pypdf" else pdfium_extractor).extract(path)

    return run


async def _refused(run: Run, path: Path, engine: str = "pypdf") -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        await run(path, engine)
    return caught.value


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text("still working § 1\n", encoding="utf-8")
    return path


# Detection


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", PDF),
        (b"\x00\x00junk before the header %PDF-1.4\n", PDF),
        (b"<!DOCTYPE html>\n<html><body><p>Hi</p></body></html>", HTML),
        (b"\xef\xbb\xbf  <!-- note -->\n<html lang=en>", HTML),
        ("<html><body>§</body></html>".encode("utf-16"), HTML),
        (b"<div class='x'><p>fragment</p></div>", HTML),
        (b"# Title\n\nSome *Markdown* with <b>inline</b> HTML.\n", TEXT),
        (b"Plain text, 3 < 4 and 5 > 2.\r\n", TEXT),
        ("Café § 12".encode("utf-16-le"), TEXT),  # UTF-16 without BOM
        (b"", TEXT),
    ],
)
def test_detect_content_type(head: bytes, expected: str) -> None:
    assert detect_content_type(head) == expected


def _zip_bytes(tmp_path: Path, names: list[str]) -> bytes:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return path.read_bytes()


@pytest.mark.parametrize(
    "head",
    [
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",  # JPEG
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # PNG
        b"\x7fELF\x02\x01\x01\x00" + bytes(56),  # executable
        b"\x1f\x8b\x08\x00" + bytes(12),  # gzip
        # An OLE2 file whose directory names an Excel "Workbook" (.xls): a .doc is read now.
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(504)
        + "Workbook\x00".encode("utf-16-le").ljust(64, b"\x00")
        + b"\x12\x00\x02",
        bytes(range(256)) * 16,  # binary of no known kind
    ],
)
def test_detect_refuses_binary(head: bytes) -> None:
    with pytest.raises(PermanentError) as caught:
        detect_content_type(head)
    assert caught.value.code == FailureCode.UNSUPPORTED_TYPE


def test_detect_zip(tmp_path: Path) -> None:
    assert detect_content_type(_zip_bytes(tmp_path, ["[Content_Types].xml", "word/x"])) == DOCX
    with pytest.raises(PermanentError) as caught:
        detect_content_type(_zip_bytes(tmp_path, ["[Content_Types].xml", "xl/workbook.xml"]))
    assert caught.value.code == FailureCode.UNSUPPORTED_TYPE


async def test_type_comes_from_bytes_not_name(extractor: Extractor, tmp_path: Path) -> None:
    pdf = _make_pdf(tmp_path / "scan.jpg", ["A PDF in disguise"])
    document = await extractor.extract(pdf)
    assert document.content_type == PDF
    assert "disguise" in document.pages[0].text

    jpeg = tmp_path / "contract.pdf"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(2048))
    with pytest.raises(PermanentError) as caught:
        await extractor.extract(jpeg)
    assert caught.value.code == FailureCode.UNSUPPORTED_TYPE


# PDF: the corpus


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
@pytest.mark.parametrize("sample", PDF_SAMPLES)
async def test_corpus(
    sample: str, engine: str, extractor: Extractor, pdfium_extractor: Extractor
) -> None:
    entry, path = corpus_entry(sample), pdf_sample(sample)
    chosen = extractor if engine == "pypdf" else pdfium_extractor
    if entry["encrypted"]:
        with pytest.raises(PermanentError) as caught:
            await chosen.extract(path)
        assert caught.value.code == FailureCode.PDF_ENCRYPTED
        assert "password" in caught.value.message
        return
    if entry["path"].startswith("017-"):
        # A broken page tree (an object missing from /Pages) that neither engine repairs.
        with pytest.raises(PermanentError) as caught:
            await chosen.extract(path)
        assert caught.value.code == FailureCode.PDF_CORRUPT
        return
    document = await chosen.extract(path)
    assert document.content_type == PDF
    assert document.engine == engine
    assert [page.number for page in document.pages] == list(range(1, entry["pages"] + 1))
    assert all("\x00" not in page.text and "\r" not in page.text for page in document.pages)


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
async def test_known_words_on_known_pages(
    engine: str, extractor: Extractor, pdfium_extractor: Extractor
) -> None:
    chosen = extractor if engine == "pypdf" else pdfium_extractor
    four = await chosen.extract(pdf_sample(FOUR_PAGES))
    # Every page is the same blind text, footed by its page number.
    assert [page.text.splitlines()[-1].strip() for page in four.pages] == ["1", "2", "3", "4"]
    assert "“Huardest gefburn”? Kjift – not at all!" in four.pages[1].text

    columns = await chosen.extract(pdf_sample(MULTICOLUMN))
    texts = [page.text for page in columns.pages]
    for page, word in [(1, "Abstract"), (2, "hymenaeos"), (3, "Copenhagen")]:
        assert [word in text for text in texts] == [number == page for number in (1, 2, 3)]


async def test_image_only_pdfs_give_empty_pages(extractor: Extractor) -> None:
    for path in sorted(pdf_sample("007-imagemagick-images").glob("*.pdf")):
        document = await extractor.extract(path)
        assert document.pages
        assert all(len(page.text.strip()) < 20 for page in document.pages), path
    with_image = await extractor.extract(pdf_sample("003-pdflatex-image/pdflatex-image.pdf"))
    assert len(with_image.pages) == 1


# PDF: generated


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
async def test_generated_pdf_keeps_legal_characters(run: Run, engine: str, tmp_path: Path) -> None:
    pages = [
        "Count I: 42 U.S.C. § 1983",
        "See ¶ 4 of the “Complaint” — denied.",
        "Müller v. Café – page three",
    ]
    document = await run(_make_pdf(tmp_path / "legal.pdf", pages), engine)
    assert (document.content_type, document.engine) == (PDF, engine)
    assert document.pages == [PageText(number, text) for number, text in enumerate(pages, 1)]


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
async def test_pdf_with_empty_user_password_is_read(run: Run, engine: str, tmp_path: Path) -> None:
    encryption = StandardEncryption("", ownerPassword="owner", canPrint=0, canCopy=0)
    text = "Restricted, not secret § 7"
    path = _make_pdf(tmp_path / "restricted.pdf", [text], encrypt=encryption)
    assert (await run(path, engine)).pages == [PageText(1, text)]


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
async def test_pdf_with_password_is_refused(run: Run, engine: str, tmp_path: Path) -> None:
    encryption = StandardEncryption("secret", ownerPassword="owner")
    path = _make_pdf(tmp_path / "secret.pdf", ["Secret"], encrypt=encryption)
    error = await _refused(run, path, engine)
    assert error.code == FailureCode.PDF_ENCRYPTED
    assert "password-protected" in error.message


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:-40],
        lambda data: b"%PDF-1.7\n" + bytes(range(256)) * 40,
    ],
    ids=["truncated", "trailer-lost", "header-and-garbage"],
)
async def test_corrupt_pdf(
    run: Run, engine: str, damage: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    path = _make_pdf(tmp_path / "good.pdf", ["one", "two", "three"])
    path.write_bytes(damage(path.read_bytes()))
    assert (await _refused(run, path, engine)).code == FailureCode.PDF_CORRUPT


# Plain text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café § 12 – Müller\n¶ 4 “quoted” —".encode(), "Café § 12 – Müller\n¶ 4 “quoted” —"),
        ("\ufeffCafé § 12 – Müller".encode(), "Café § 12 – Müller"),  # UTF-8 BOM
        ("Café § 12 – Müller\r\n¶ 4".encode("utf-16"), "Café § 12 – Müller\n¶ 4"),
        ("Café § 12 Müller\r\nStraße".encode("latin-1"), "Café § 12 Müller\nStraße"),
        ("Café § 12 – Müller „Zitat“".encode("cp1252"), "Café § 12 – Müller „Zitat“"),
        ("Обвинение по статье 12".encode("cp1251"), "Обвинение по статье 12"),
        (b"line one\rline two\x00\x07 \x0bend  \n\n\n", "line one\nline two\nend"),
        ("e\u0301 precomposed".encode(), "é precomposed"),  # NFC
        (
            "Mostly UTF-8 – one stray \x96 byte".encode().replace(b"\xc2\x96", b"\x96"),
            "Mostly UTF-8 – one stray \ufffd byte",
        ),
        # Bytes in no encoding at all: replacement characters as the last resort.
        (b"M\xfcller \x81\x8d\x8f\x90\x9d \xa7 12\n", "Müller \ufffd\ufffd\ufffd\ufffd\ufffd § 12"),
    ],
    ids=[
        "utf-8", "utf-8-bom", "utf-16", "latin-1", "cp1252", "cp1251", "controls", "nfc",
        "stray-byte", "undecodable",
    ],
)  # fmt: skip
async def test_plain_text(run: Run, data: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(data)
    document = await run(path, "pypdf")
    assert (document.content_type, document.engine) == (TEXT, "text")
    assert document.pages == [PageText(1, expected)]


async def test_garbage_bytes_are_unsupported_not_a_crash(run: Run, tmp_path: Path) -> None:
    # Decision: unknown binary is refused (UNSUPPORTED) rather than indexed as mojibake.
    path = tmp_path / "garbage.txt"
    for size in range(10_000, 10_005):
        path.write_bytes(os.urandom(size))
        assert (await _refused(run, path)).code == FailureCode.UNSUPPORTED_TYPE


# HTML

PAGE = """<!DOCTYPE html>
<html><head><title>Not shown</title><style>p { color: red }</style>
<script>document.write("<p>not shown</p>")</script></head>
<body>
  <noscript>Enable JavaScript</noscript><template><p>hidden</p></template>
  <h1>Smith  v.   Jones</h1>
  <p>Under 42 U.S.C. &sect;&nbsp;1983 &amp; &#182; 4,
     the &ldquo;court&rdquo; held&mdash;<b>firmly</b>.</p>
  <ul><li>first</li><li>second</li></ul>
  <table><tr><th>Party</th><th>Role</th></tr><tr><td>Acme</td> <td>Plaintiff</td></tr></table>
  <pre>  indented
    code</pre>
  line<br>break
  <script>var hidden = 1;</script>
</body></html>
"""


async def test_html_visible_text(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "page.txt"  # the name says text; the bytes say HTML
    path.write_text(PAGE, encoding="utf-8")
    document = await run(path, "pypdf")
    assert (document.content_type, document.engine) == (HTML, "html")
    assert document.pages[0].text == (
        "Smith v. Jones\n\n"
        "Under 42 U.S.C. § 1983 & ¶ 4, the “court” held—firmly.\n\n"  # &nbsp;: a space
        "first\nsecond\n\n"
        "Party\tRole\nAcme\tPlaintiff\n\n"
        "  indented\n    code\n\n"
        "line\nbreak"
    )


def test_html_declared_charset(tmp_path: Path) -> None:
    path = tmp_path / "legacy.html"
    page = '<html><head><meta charset="windows-1252"></head><body>§ 5 – “x”</body></html>'
    path.write_bytes(page.encode("cp1252"))
    assert extract_file(path).pages[0].text == "§ 5 – “x”"


@pytest.mark.parametrize(
    "page",
    [
        "<html><body><p>" + "lorem ipsum " * 500_000 + "</p></body></html>",  # 6 MB of text
        '<html><body><div title="' + "x" * 5_000_000 + '">tag</div></body></html>',
        "<html><body>" + "<a" * 500_000,  # no ">" after the "<"s: quadratic in html.parser
        "<html><body>" + "<a " * 300_000 + ">",
        "<html><body>" + "a < b " * 500_000,
        "<html><body>" + "<div>x" * 200_000,  # nesting scans are quadratic in some parsers
        "<html><body>" + "<ul><li>x" * 100_000,
        "<html><body>" + "<!--" * 500_000,
        "<html><body><script>" + "if (a<b) x(); " * 500_000,  # never closed
        "<html><body><table>" + "<tr><td>a</td><td>b</td></tr>" * 300_000 + "</table>",
    ],
    ids=[
        "big-text", "big-attribute", "unclosed-tags", "one-huge-tag", "many-lt", "deep-divs",
        "deep-lists", "unclosed-comments", "unclosed-script", "big-table",
    ],
)  # fmt: skip
def test_html_pathological_inputs_stay_linear(page: str, tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    path.write_text(page, encoding="utf-8")
    started = time.perf_counter()
    extract_file(path)
    # A quadratic parser takes hours on these; a linear one 0.4-3 s on an idle 2-core machine
    # and up to 14 s late in the full suite (one long process, a heap the GC keeps scanning).
    assert time.perf_counter() - started < 60


def test_html_deep_nesting_keeps_every_word() -> None:
    # Unclosed inline tags nest deeper with each paragraph; parsers with a depth limit (lxml's
    # is 256) drop what lies below it, and all that follows.
    sloppy = "<html><body>" + "<p><font>Clause text. " * 5_000 + "<p>The end.</body></html>"
    text = html_to_text(sloppy)
    assert text.count("Clause text.") == 5_000
    assert text.endswith("Clause text.\n\nThe end.")
    deep = "<div>" * 3_000 + "deep" + "</div>" * 3_000 + "<p>after</p>"
    assert html_to_text(deep) == "deep\n\nafter"


def test_html_is_tokenized_as_browsers_do() -> None:
    # Script content is raw text, even when it looks like markup, and "<script/>" opens it.
    assert html_to_text('<script>document.write("</p>")</script>shown') == "shown"
    assert html_to_text("<script/>hidden</script>shown") == "shown"
    assert html_to_text("a < b &copy &amp c") == "a < b © & c"  # legacy entities, no ";"
    assert html_to_text("<p>Done.</p>Cut off <a hre") == "Done.\n\nCut off"  # no tag: dropped


# DOCX


def _make_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Motion to Dismiss", level=1)
    document.add_paragraph("Under 42 U.S.C. § 1983 and ¶ 4, the “court” held – firmly — so.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Party"
    table.cell(0, 1).text = "Role"
    table.cell(1, 0).text = "Acme Corp."
    table.cell(1, 1).text = "Plaintiff"
    document.add_paragraph("After the table.")
    document.save(str(path))
    return path


async def test_docx_paragraphs_and_table_in_order(run: Run, tmp_path: Path) -> None:
    document = await run(_make_docx(tmp_path / "motion.bin"), "pypdf")
    assert (document.content_type, document.engine) == (DOCX, "docx")
    assert document.pages == [
        PageText(
            1,
            "Motion to Dismiss\n\n"
            "Under 42 U.S.C. § 1983 and ¶ 4, the “court” held – firmly — so.\n\n"
            "Party\tRole\nAcme Corp.\tPlaintiff\n\n"
            "After the table.",
        )
    ]


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(b'<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>')
            spaces = b" " * (1024 * 1024)
            for _ in range(300):  # 300 MB of spaces, written in pieces
                part.write(spaces)
    assert path.stat().st_size < 2 * 1024 * 1024
    return path


async def test_docx_zip_bomb_is_refused_quickly(run: Run, zip_bomb: Path) -> None:
    started = time.perf_counter()
    error = await _refused(run, zip_bomb)
    assert error.code == FailureCode.TOO_LARGE
    assert time.perf_counter() - started < 5


async def test_zip_that_is_not_docx(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "sheet.docx"
    path.write_bytes(_zip_bytes(tmp_path, ["[Content_Types].xml", "xl/workbook.xml"]))
    assert (await _refused(run, path)).code == FailureCode.UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:2000],
        lambda data: data.replace(b"<w:body>", b"<!DOCTYPE x [<!ENTITY a 'b'>]><w:body>"),
    ],
    ids=["truncated", "dtd"],
)
async def test_damaged_docx(run: Run, damage: Callable[[bytes], bytes], tmp_path: Path) -> None:
    source = _make_docx(tmp_path / "source.docx")
    path = tmp_path / "motion.docx"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            copy.writestr(info, damage(data) if info.filename == "word/document.xml" else data)
    error = await _refused(run, path)
    assert error.code == FailureCode.UNSUPPORTED_TYPE
    assert "damaged" in error.message


# Limits: time, memory, crashes


async def test_timeout_kills_the_child_and_the_extractor_goes_on(small_text: Path) -> None:
    extractor = Extractor(timeout_seconds=0.5, memory_limit_mb=1024, max_concurrency=1)
    try:
        started = time.perf_counter()
        with pytest.raises(PermanentError) as caught:
            await extractor.extract(pdf_sample(GEOTOPO))
        assert caught.value.code == FailureCode.TIMEOUT
        assert time.perf_counter() - started < 5  # cold start (~0.5 s) + 0.5 s, not ~7 s
        document = await extractor.extract(small_text)
        assert document.pages[0].text == "still working § 1"
    finally:
        await extractor.aclose()


async def test_memory_cap_ends_in_too_large(small_text: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        for _ in range(100):
            handle.write(b"word " * 200_000)  # 100 MB, with the interpreter past a 128 MB cap
    extractor = Extractor(timeout_seconds=30, memory_limit_mb=128, max_concurrency=1)
    try:
        with pytest.raises(PermanentError) as caught:
            await extractor.extract(big)
        assert caught.value.code == FailureCode.TOO_LARGE
        document = await extractor.extract(small_text)
        assert document.pages[0].text == "still working § 1"
    finally:
        await extractor.aclose()
        big.unlink()  # pytest keeps the last runs' temporary files


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (signal.SIGSEGV, FailureCode.PDF_CORRUPT),
        (signal.SIGKILL, FailureCode.TOO_LARGE),
        (signal.SIGXCPU, FailureCode.TIMEOUT),
    ],
)
async def test_a_dying_child_costs_at_most_its_page_not_the_worker(
    sent: signal.Signals, code: FailureCode, small_text: Path, tmp_path: Path
) -> None:
    extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1)
    others = _others()
    killed: list[int] = []

    async def on_page(done: int, total: int, note: str) -> None:
        if done == 1 and not killed:  # a parser segfault, the kernel's OOM killer, RLIMIT_CPU
            for child in _extraction_children(others):
                killed.append(child.pid)
                child.send_signal(sent)

    try:
        # A PDF: a fresh child goes on. The page the child was on, if it was on one, is a
        # failed page with the cause; the others are read.
        document = await extractor.extract(
            _make_pdf(tmp_path / "many.pdf", ["text"] * 200), on_page
        )
        assert killed
        assert len(document.pages) == 200
        failed = document.coverage.failed_pages
        assert len(failed) <= 1
        assert all(page.code == code and f"exit status {-sent}" in page.message for page in failed)
        assert sum(page.text == "text" for page in document.pages) == 200 - len(failed)

        # Any other format (no pages to go on from): the document fails with the cause.
        big = tmp_path / "big.txt"
        big.write_text("Der Vertrag ist gültig, § 12 – Müller.\n" * 1_500_000)  # ~3 s to read
        await extractor.aclose()  # a cold child: a warm one that dies before a word is retried
        extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1)
        reading = asyncio.create_task(extractor.extract(big))
        async with asyncio.timeout(30):  # until the child is past start-up (~0.5 s of CPU)
            while not (busy := _extraction_children(others)) or _cpu_seconds(busy[0]) < 1.2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        busy[0].send_signal(sent)
        with pytest.raises(PermanentError) as caught:
            await reading
        assert caught.value.code == code
        assert f"exit status {-sent}" in caught.value.message
        assert (await extractor.extract(small_text)).pages[0].text == "still working § 1"
    finally:
        await extractor.aclose()


# Progress, cancellation, concurrency, shutdown


async def test_on_page_is_awaited_once_per_page_in_order(extractor: Extractor) -> None:
    calls: list[tuple[int, int, str]] = []

    async def on_page(done: int, total: int, note: str) -> None:
        calls.append((done, total, note))

    await extractor.extract(pdf_sample(FOUR_PAGES), on_page)
    assert calls == [(n, 4, f"page {n} of 4") for n in (1, 2, 3, 4)]


class Cancelled(Exception):
    pass


async def test_on_page_raising_kills_the_child(small_text: Path) -> None:
    extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1)
    others = _others()
    pids: list[int] = []

    async def on_page(done: int, total: int, note: str) -> None:
        pids.extend(child.pid for child in _extraction_children(others))
        raise Cancelled("the user cancelled the document")

    try:
        started = time.perf_counter()
        with pytest.raises(Cancelled, match="the user cancelled"):
            await extractor.extract(pdf_sample(GEOTOPO), on_page)
        assert time.perf_counter() - started < 5  # not the ~7 s the whole file takes
        assert len(pids) == 1
        assert _gone(pids[0])
        assert (await extractor.extract(small_text)).pages[0].text == "still working § 1"
    finally:
        await extractor.aclose()
    assert _extraction_children(others) == []


async def test_at_most_max_concurrency_children() -> None:
    extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=2)
    others = _others()
    seen: list[int] = []

    async def on_page(done: int, total: int, note: str) -> None:
        seen.append(len(_extraction_children(others)))

    try:
        documents = await asyncio.gather(
            *(extractor.extract(pdf_sample(FOUR_PAGES), on_page) for _ in range(5))
        )
        assert all(len(document.pages) == 4 for document in documents)
        assert len(seen) == 20
        assert max(seen) <= 2
    finally:
        await extractor.aclose()
    assert _extraction_children(others) == []


async def test_aclose_kills_running_children(small_text: Path) -> None:
    geotopo = pdf_sample(GEOTOPO)
    extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=2)
    others = _others()
    first_page = asyncio.Event()

    async def on_page(done: int, total: int, note: str) -> None:
        first_page.set()

    await asyncio.gather(extractor.extract(small_text), extractor.extract(small_text))
    running = asyncio.create_task(extractor.extract(geotopo, on_page))
    await asyncio.wait_for(first_page.wait(), 30)
    children = _extraction_children(others)
    assert len(children) == 2  # both warm, one of them busy
    await extractor.aclose()
    with pytest.raises(RetryableError):
        await running
    assert _extraction_children(others) == []
    assert all(_gone(child.pid) for child in children)  # reaped: no zombies
    with pytest.raises(RuntimeError, match="closed"):
        await extractor.extract(small_text)


def test_extract_file_in_process_reports_progress(tmp_path: Path) -> None:
    path = _make_pdf(tmp_path / "two.pdf", ["first", "second"])
    events: list[object] = []
    document = extract_file(path, emit=events.append)
    assert document == ExtractedDocument(
        content_type=PDF,
        pages=[PageText(1, "first"), PageText(2, "second")],
        engine="pypdf",
        coverage=TextCoverage(pages_total=2, pages_text_layer=2),
    )
    first, second = (
        PageResult(n, text, PageSource.TEXT) for n, text in [(1, "first"), (2, "second")]
    )
    assert events == [Reading(1, 2), PageDone(first, 2), Reading(2, 2), PageDone(second, 2)]
    with pytest.raises(ValueError, match="unknown PDF engine"):
        extract_file(path, pdf_engine="poppler")


@pytest.mark.parametrize(
    "options",
    [
        {"timeout_seconds": 0, "memory_limit_mb": 1024, "max_concurrency": 1},
        {"timeout_seconds": 1, "memory_limit_mb": 0, "max_concurrency": 1},
        {"timeout_seconds": 1, "memory_limit_mb": 1024, "max_concurrency": 0},
        {
            "timeout_seconds": 1,
            "memory_limit_mb": 1,
            "max_concurrency": 1,
            "page_timeout_seconds": 0,
        },
        {"timeout_seconds": 1, "memory_limit_mb": 1024, "max_concurrency": 1, "pdf_engine": "x"},
    ],
)
def test_extractor_checks_its_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"PDF engine|positive"):
        Extractor(**options)


async def test_on_page_timeout_error_is_not_translated(extractor: Extractor) -> None:
    # Only the extractor's own deadline becomes PermanentError(TIMEOUT).
    async def on_page(done: int, total: int, note: str) -> None:
        raise TimeoutError("the progress store timed out")

    with pytest.raises(TimeoutError, match="progress store"):
        await extractor.extract(pdf_sample(FOUR_PAGES), on_page)


async def test_an_idle_child_that_died_is_replaced(small_text: Path) -> None:
    extractor = Extractor(timeout_seconds=60, memory_limit_mb=1024, max_concurrency=1)
    others = _others()
    try:
        await extractor.extract(small_text)
        (idle,) = _extraction_children(others)
        idle.kill()
        idle.wait(5)
        document = await extractor.extract(small_text)
        assert document.pages[0].text == "still working § 1"
        assert [child.pid for child in _extraction_children(others)] != [idle.pid]
    finally:
        await extractor.aclose()


@pytest.mark.parametrize(
    ("raised", "reply"),
    [
        (
            PermanentError("encrypted", code=FailureCode.PDF_ENCRYPTED),
            ("error", "permanent", "pdf_encrypted", "encrypted", True),
        ),
        (MemoryError(), ("error", "permanent", "too_large", "needs more memory", False)),
        (OSError(12, "Cannot allocate memory"), ("error", "permanent", "too_large", "", False)),
        (OSError(5, "I/O error"), ("error", "retryable", "transient", "I/O error", True)),
        (KeyError("/Root"), ("error", "permanent", "unsupported_type", "KeyError", True)),
    ],
    ids=["permanent", "memory", "enomem", "io", "unexpected"],
)
def test_child_maps_failures_to_replies(
    raised: BaseException,
    reply: tuple[str, str, str, str, bool],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(path: Path, **options: Any) -> ExtractedDocument:
        raise raised

    monkeypatch.setattr(extraction_child, "stream_file", failing)
    message, sound = extraction_child._answer(("x", "pypdf", 10.0, PagePlan()), 1 << 30, BytesIO())
    kind, category, code, text = message
    assert (kind, category, code, sound) == (reply[0], reply[1], reply[2], reply[4])
    assert reply[3] in str(text)


def test_child_reports_pages_then_the_document(tmp_path: Path) -> None:
    path = _make_pdf(tmp_path / "two.pdf", ["first", "second"])
    sent = BytesIO()
    message, sound = extraction_child._answer((str(path), "pypdf", 10.0, PagePlan()), 1 << 30, sent)
    sent.seek(0)
    frames = [read_frame(sent) for _ in range(5)]
    first, second = (
        PageResult(n, text, PageSource.TEXT) for n, text in [(1, "first"), (2, "second")]
    )
    assert frames == [
        ("event", Reading(1, 2)),
        ("event", PageDone(first, 2)),
        ("event", Reading(2, 2)),
        ("event", PageDone(second, 2)),
        None,
    ]
    assert sound
    assert message == ("ok", PDF, "pypdf", 2)
