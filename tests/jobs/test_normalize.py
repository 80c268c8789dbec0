"""The normalisation step every page goes through, and the decoding of legacy 8-bit text."""

from __future__ import annotations

import re
import string
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lexintel_jobs.extraction import extract_file
from lexintel_jobs.extraction.model import normalize_text
from lexintel_jobs.extraction.text import decode_text, read_html
from tests.conftest import DIRTY_CHARACTER
from tests.corpus import corpus_path

# Rules


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Control characters, noncharacters, lone surrogates; tab and newline stay, a form
        # feed is a paragraph break.
        ("a\x00b\x07c\x1bd\x7fe\x80f\x9fg", "abcdefg"),
        ("tab\there\fpage\nline", "tab\there\n\npage\nline"),
        ("a\ufdd0b\ufdefc\uffffd\U0001fffee\U0010ffff", "abcde"),
        ("broken \ud800 map", "broken \ufffd map"),
        ("undecodable \ufffd\ufffd stays", "undecodable \ufffd\ufffd stays"),
        # Invisible characters that split words go; joiners and bidi controls stay.
        ("con\u200btract \u2060and\ufeff word", "contract and word"),
        ("می\u200cخواهم", "می\u200cخواهم"),  # Persian needs the zero-width non-joiner
        ("السلام\u200f عليكم \u202bنص\u202c", "السلام\u200f عليكم \u202bنص\u202c"),
        # pdfium's line-end hyphen (U+FFFE; U+0002 from its bounded-text call).
        ("the indemni\ufffefication of", "the indemnification of"),
        ("an out-of\ufffestate court", "an out-of-state court"),
        ("Smith\ufffeJones and COVID-19\ufffelike", "Smith-Jones and COVID-19-like"),
        ("quarrymaster\x02ship", "quarrymastership"),
        ("\ufffelone\ufffe and \ufffe here", "lone and  here"),
        # Soft hyphens.
        ("indem\u00adnification", "indemnification"),
        ("counter\u00ad\nclaim and arbi\u00ad \ntration", "counterclaim and arbitration"),
        # Line-end hyphens.
        ("indemni-\nfication", "indemnification"),
        ("indemni-  \r\nfication", "indemnification"),
        ("uni\u2010\ncode", "unicode"),
        ("(indemni-\nfication) “indemni-\nfication”", "(indemnification) “indemnification”"),
        ("out-of-\nstate", "out-of-state"),
        ("COVID-19-\nrelated, a 12-\nmonth term", "COVID-19-related, a 12-month term"),
        ("Smith-\nJones", "Smith-\nJones"),
        ("pages 12-\n13", "pages 12-\n13"),
        ("list:\n-\nitem one -\nnext", "list:\n-\nitem one -\nnext"),
        ("see above --\nthen", "see above --\nthen"),
        ("para-\n\ngraph", "para-\n\ngraph"),
        ("Přero-\nvem and účin-\nnosti", "Přerovem and účinnosti"),
        # Ligatures; NFKC nowhere else.
        ("Beneﬁciary oﬃce Conﬁdentiality", "Beneficiary office Confidentiality"),
        ("ﬂood ﬀ ﬄ ﬅ ﬆ ﬓ", "flood ff ffl st st մն"),
        ("§ 12 ¶ 4 “x” – — ½ ² ™ Ｆ", "§ 12 ¶ 4 “x” – — ½ ² ™ Ｆ"),
        # Whitespace.
        ("one\r\ntwo\rthree\x0bfour\x85five\u2028six", "one\ntwo\nthree\nfour\nfive\nsix"),
        ("§\u00a01983\u2002x\u2009y\u202fz\u205f!\u3000?", "§ 1983 x y z ! ?"),
        ("keep   inner  runs   \n  indent", "keep   inner  runs\n  indent"),
        ("\n \n\ta\n\n\n\n\n\nb\n\n\nc  \n\n", "\ta\n\n\nb\n\n\nc"),
        ("hard\u2029break", "hard\u2029break"),
        # NFC.
        ("e\u0301 and e\x00\u0301", "é and é"),
    ],
)
def test_rule(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected


# What the PDF engines give for the regression files (../shared/corpus/regressions).
PDFIUM_HYPHENATION = (
    "The Lessee shall pay all sums due for the indemni\ufffefication of the Lessor, including the "
    "quarrymaster\ufffeship fees, without set-off or counterclaim of any kind."
)
PYPDF_HYPHENATION = (
    "The Lessee shall pay all sums due for the indemni-\nfication of the Lessor, including the "
    "quarrymaster-\nship fees, without set-off or counterclaim of any kind.\n"
)
PYPDF_LIGATURES = (
    "The Beneﬁciary shall ﬁle the certiﬁcate of ﬂood insurance\nwith the Registrar's oﬃce "
    "within thirty days.\nConﬁdentiality obligations survive termination.\n"
)


@pytest.mark.parametrize("raw", [PDFIUM_HYPHENATION, PYPDF_HYPHENATION])
def test_engine_text_with_line_end_hyphens(raw: str) -> None:
    text = normalize_text(raw)
    assert "indemnification" in text
    assert "quarrymastership" in text
    assert "set-off" in text
    assert "\ufffe" not in text


def test_engine_text_with_ligatures() -> None:
    assert normalize_text(PYPDF_LIGATURES) == (
        "The Beneficiary shall file the certificate of flood insurance\nwith the Registrar's "
        "office within thirty days.\nConfidentiality obligations survive termination."
    )


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("line-end-hyphenation.pdf", ["indemnification", "quarrymastership", "set-off"]),
        ("ligatures.pdf", ["Beneficiary", "office", "Confidentiality"]),
    ],
)
def test_regression_pdfs(engine: str, name: str, words: list[str]) -> None:
    document = extract_file(corpus_path("regressions", name), pdf_engine=engine)
    text = "\n".join(page.text for page in document.pages)
    assert all(word in text for word in words), text
    assert not DIRTY_CHARACTER.search(text)


def test_regression_html_soft_hyphens() -> None:
    text = normalize_text(read_html(corpus_path("regressions", "soft-hyphens.html").read_bytes()))
    assert all(word in text for word in ["indemnification", "counterclaim", "arbitration"])
    assert "\u00ad" not in text


# Properties

_TRICKY = st.sampled_from(
    [
        "-", "\u2010", "\n", "\r", "\r\n", " ", "\t", "\f", "\x0b", "\x85", "\u2028", "\u2029",
        "\ufffe", "\uffff", "\ufdd0", "\U0010fffe", "\x00", "\x02", "\x1b", "\x9f", "\u00ad",
        "\u200b", "\ufeff", "\u00a0", "\u3000", "ﬁ", "ﬃ", "\u0301", "\ufffd", "a", "e", "Z",
        "ř", "1", "(", "out-of-", "-\n", "\ufffen", "\u00ad\n",
    ]
)  # fmt: skip
_ANY_TEXT = st.lists(st.one_of(st.characters(), _TRICKY)).map("".join)


@given(_ANY_TEXT)
def test_no_control_or_noncharacter_survives(raw: str) -> None:
    assert not DIRTY_CHARACTER.search(normalize_text(raw))


@given(_ANY_TEXT)
def test_idempotent(raw: str) -> None:
    once = normalize_text(raw)
    assert normalize_text(once) == once


def _whitespace_rules(text: str) -> str:
    lines = [line.rstrip(" \t") for line in text.split("\n")]
    return re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines)).strip("\n")


_PROSE = string.ascii_letters + string.digits + " \n\t.,;:!?'\"()[]/&"


@given(st.text(alphabet=_PROSE))
def test_ascii_prose_changes_only_by_whitespace_rules(raw: str) -> None:
    assert normalize_text(raw) == _whitespace_rules(raw)


@given(_ANY_TEXT)
def test_output_is_nfc(raw: str) -> None:
    text = normalize_text(raw)
    assert unicodedata.is_normalized("NFC", text)


# Legacy 8-bit encodings

CENTRAL = [
    "Příloha č. 3",
    "Město Přerov, Žďár nad Sázavou",
    "Smlouva nabývá účinnosti dnem podpisu.",
    "Kupující: Jiří Dvořák, Štěpánkova 12, Ústí nad Labem",
    "Nájemce je povinen platit nájemné řádně a včas. Výpovědní lhůta činí tři měsíce a počíná "
    "běžet prvním dnem měsíce následujícího po doručení výpovědi druhé smluvní straně.",
    "Ľubomír Šťastný, Žilina",
    "Zmluva o dielo uzavretá podľa § 536 Obchodného zákonníka.",
    "Sąd Okręgowy w Łodzi",
    "Zażółć gęślą jaźń",
    "Gdańsk",
    "Najemca zobowiązuje się do zapłaty czynszu w terminie do piętnastego dnia każdego "
    "miesiąca. Strony ustalają, że spory będą rozstrzygane przez sąd właściwy.",
    "Bérleti szerződés",
    "Győr, 2024. szeptember 12.",
    "A bérlő köteles a bérleti díjat minden hónap tizenötödik napjáig megfizetni; ennek "
    "eredménytelensége esetén a bíróság dönt.",
    "Trgovački sud u Rijeci, rješenje",
    "Curtea de Apel Timişoara, decizia civilă nr. 12",
]
CYRILLIC = [
    "Обвинение по статье 12",
    "Статья 5",
    "Истец: Иванов И. И.",
    "Арендатор обязуется вносить арендную плату не позднее пятнадцатого числа каждого месяца.",
    "Договор за наем, София, чл. 5",
    "Договір оренди, Київ, стаття 5",
    "ООО «Ромашка» (LLC Romashka), ИНН 7701234567, Moscow, § 5 – “Agreement”",
]
WESTERN = [
    "Café § 12 – Müller",
    "Café § 12 – Müller „Zitat“",
    "See ¶ 4 of the “Complaint” — denied.",
    "Très bien",
    "Être ou ne pas être",
    "Le maître d’œuvre reçoit l’indemnité",
    "Mère, père, très, à côté, où",
    "Le présent contrat est régi par le droit français. Fait à Paris, le 12 février.",
    "Straße, Größe, Übergabe",
    "Señor",
    "España, niño, mañana – Contrato de arrendamiento, año 2024",
    "È vietata la cessione",
    "Il conduttore è tenuto al pagamento del canone. Città di Forlì, perciò così.",
    "Contrato de locação — São João",
    "Cláusula 3ª – Das obrigações da locatária: pagará até o dia 5.",
    "Hyresgästen ska betala hyran senast den femtonde varje månad. Göteborgs tingsrätt.",
    "Søren Ørsted, Århus",
    "Þórður Guðmundsson, Reykjavík",
    "Price: £500 or €600, ½ share, 25° angle ± 2%",
    "José Núñez v. García, 123 F. Supp. 2d 456",
]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        *((text, "cp1250") for text in CENTRAL),
        *((text, "iso8859_2") for text in CENTRAL),
        *((text, "cp1251") for text in CYRILLIC),
        *((text, "cp1252") for text in WESTERN),
    ],
)
def test_legacy_encoding(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize(
    ("texts", "encoding"),
    [(CENTRAL, "cp1250"), (CENTRAL, "iso8859_2"), (CYRILLIC, "cp1251"), (WESTERN, "cp1252")],
)
def test_legacy_encoding_of_a_long_text(texts: list[str], encoding: str) -> None:
    text = "\n\n".join(texts * 20)
    assert decode_text(text.encode(encoding)) == text


def test_undecodable_bytes_stay_windows_1252() -> None:
    # The five bytes Windows-1252 leaves undefined do not make a Central European text.
    data = b"Herr M\xfcller paid \x81\x8d\x8f\x90\x9d under \xa7 12"
    assert decode_text(data) == "Herr Müller paid \ufffd\ufffd\ufffd\ufffd\ufffd under § 12"


def test_czech_lease_in_windows_1250() -> None:
    text = decode_text(corpus_path("regressions", "czech-lease-cp1250.txt").read_bytes())
    assert all(word in text for word in ["Přerov", "Žďár", "účinnosti"])


def test_czech_plain_text_file_end_to_end() -> None:
    document = extract_file(corpus_path("regressions", "czech-lease-cp1250.txt"))
    assert "Žďár nad Sázavou" in document.pages[0].text
