"""Letters as PDF documents handed to print-and-mail through a spool folder (issue 13,
item 6): real fpdf2 output read back byte by byte, a real SQLite ledger, a real
time-skipping Temporal server driving a loan to its letter steps.

PDFs are read with a small reader below (inflate the streams, map the glyph codes back
through the embedded ToUnicode CMap), so a letter whose Chinese came out as boxes or in a
font that was not embedded fails here.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from temporalio.testing import WorkflowEnvironment

from duecourse.channels import OutboxChannel, OutgoingMessage
from duecourse.channels.letters import SpoolChannel, letter_channel
from duecourse.channels.router import ChannelRouter
from duecourse.channels.routing import ChannelSettingError, channels_from_settings
from duecourse.documents.fonts import FONT_SETTING, FontMissing, locate_font
from duecourse.documents.pdf import Letter, render_letter
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.templates import render
from tests.conftest import settings_for_tests
from tests.factories import make_loan
from tests.test_workflow_faults import rig
from tests.test_workflow_negotiation import STANDARD
from tests.test_workflow_paths import engage

VALUES = {"lender_name": "Acme Lending", "lender_contact": "400-800-1234",
          "borrower_name": "李伟", "loan_id": "L-7", "amount": "¥1,000.00",
          "due_date": "2026-11-01", "cure_days": "14", "days_past_due": "30"}


# ------------------------------------------------------------------ a small PDF reader
def _streams(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """(object dictionary, inflated data) of every stream."""
    found = []
    for m in re.finditer(rb"<<(.*?)>>\s*stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        head, data = m.group(1), m.group(2)
        found.append((head, zlib.decompress(data) if b"/FlateDecode" in head else data))
    return found


def _literals(content: bytes) -> list[bytes]:
    """The literal strings `( ... )` a content stream shows, unescaped."""
    out, i = [], 0
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
               ord("f"): b"\f"}
    while (i := content.find(b"(", i)) != -1:
        buf, depth, i = bytearray(), 1, i + 1
        while depth:
            c = content[i]
            if c == 0x5C:  # backslash
                nxt = content[i + 1]
                if 0x30 <= nxt <= 0x37:
                    octal = re.match(rb"[0-7]{1,3}", content[i + 1:i + 4])
                    assert octal is not None
                    buf.append(int(octal.group(), 8))
                    i += 1 + len(octal.group())
                    continue
                buf += escapes.get(nxt, bytes([nxt]))
                i += 2
                continue
            depth += c == 0x28
            depth -= c == 0x29
            if depth:
                buf.append(c)
            i += 1
        out.append(bytes(buf))
    return out


def pdf_text(pdf: bytes) -> str:
    """Every character the pages show, decoded through the font's ToUnicode map, with no
    whitespace (line breaks and justification move spaces about)."""
    cmap: dict[int, str] = {}
    pages: list[bytes] = []
    for head, data in _streams(pdf):
        if b"begincmap" in data:
            for code, uni in re.findall(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>", data):
                cmap[int(code, 16)] = bytes.fromhex(uni.decode()).decode("utf-16-be")
        elif b"BT" in data and b"Tf" in data and b"Subtype" not in head:
            pages.append(data)
    chars = []
    for page in pages:
        for shown in _literals(page):
            chars += [cmap.get(int.from_bytes(shown[k:k + 2], "big"), "\ufffd")
                      for k in range(0, len(shown) - 1, 2)]
    return re.sub(r"\s+", "", "".join(chars))


def page_objects(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf))


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


# ------------------------------------------------------------------ rendering
@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_a_letter_is_a_pdf_in_the_borrowers_language_with_its_font_embedded(
        language: str) -> None:
    """Without an embedded CJK font the Chinese letter shows boxes (no glyphs to map)."""
    rendered = render("demand_letter", language, VALUES, jurisdiction="CN", channel="letter")
    letter = Letter("1 Nanjing Road\nShanghai 200001", rendered.subject, rendered.body,
                    language, "Acme Lending", "400-800-1234", date(2026, 12, 2), "L-7")
    pdf = render_letter(letter, locate_font())
    assert pdf.data.startswith(b"%PDF-1.") and pdf.data.rstrip().endswith(b"%%EOF")
    assert pdf.pages == page_objects(pdf.data) == 1
    assert b"/FontFile3" in pdf.data or b"/FontFile2" in pdf.data  # the font program
    assert re.search(rb"/BaseFont /[A-Z]{6}\+NotoSansSC", pdf.data), "a subset, embedded"
    assert b"/Helvetica" not in pdf.data  # no core font stands in for a missing glyph
    text = pdf_text(pdf.data)
    assert "\ufffd" not in text
    assert squeeze(rendered.body) in text  # the jurisdiction's wording as rendered
    assert squeeze(rendered.subject or "") in text
    assert "AcmeLending" in text and "1NanjingRoad" in text
    if language == "zh-CN":
        assert "正式催告函" in text and "2026年12月2日" in text
    else:
        assert "December2,2026" in text


def test_a_long_letter_numbers_its_pages() -> None:
    """Without the total-pages alias the footer would print '{nb}'."""
    rendered = render("final_offer", "zh-CN", VALUES, jurisdiction="CN", channel="letter")
    letter = Letter("上海市南京路1号", rendered.subject, "\n\n".join([rendered.body] * 12),
                    "zh-CN", "Acme Lending", "400-800-1234", date(2026, 12, 2))
    pdf = render_letter(letter, locate_font())
    assert pdf.pages == page_objects(pdf.data) == 2
    text = pdf_text(pdf.data)
    assert "第1页，共2页" in text and "第2页，共2页" in text  # noqa: RUF001


def _latin_only_font(path: Path) -> Path:
    """A real TrueType font with glyphs for A-Z only (built here: nothing downloaded)."""
    names = [".notdef", *(chr(c) for c in range(ord("A"), ord("Z") + 1))]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({ord(n): n for n in names[1:]})
    pen = TTGlyphPen(None)
    pen.moveTo((0, 0))
    pen.lineTo((500, 0))
    pen.lineTo((500, 700))
    pen.closePath()
    glyph = pen.glyph()
    fb.setupGlyf({n: glyph for n in names})
    fb.setupHorizontalMetrics({n: (600, 0) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "LatinOnly", "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    fb.save(str(path))
    return path


def test_a_font_without_chinese_is_refused_naming_the_setting(tmp_path: Path) -> None:
    """Without the check, zh-CN letters would print boxes at the print house."""
    with pytest.raises(FontMissing, match=f"^{FONT_SETTING}=.*no glyph for"):
        locate_font(_latin_only_font(tmp_path / "latin.ttf"))
    (tmp_path / "not-a-font.ttf").write_bytes(b"hello")
    with pytest.raises(FontMissing, match="is not a TrueType or OpenType font"):
        locate_font(tmp_path / "not-a-font.ttf")
    with pytest.raises(FontMissing, match="no such font file"):
        locate_font(tmp_path / "absent.otf")


@pytest.mark.parametrize("url", ["s3://bucket/letters", "file:///var/spool/letters",
                                 "spool://var/spool/letters", "/var/spool/letters"])
def test_a_letter_url_other_than_a_spool_folder_is_one_sentence(url: str,
                                                                ledger: Ledger) -> None:
    with pytest.raises(ChannelSettingError) as caught:
        letter_channel(Settings(letter_url=url), ledger)
    message = str(caught.value)
    assert message.startswith("DUECOURSE_LETTER_URL must") and "spool:///" in message
    assert ". " not in message and "\n" not in message


# ------------------------------------------------------------------ the spool, end to end
def _spooled(folder: Path) -> dict[str, list[Path]]:
    return {ext: sorted(folder.glob(f"*.{ext}")) for ext in ("pdf", "json")}


async def test_a_loans_letters_reach_the_spool_once_as_the_documents_kept(
        ts_env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path) -> None:
    """A loan through negotiation into legal: its final-offer letter and demand letter
    are PDFs in the spool, each the same bytes as its documents row, and a retried send
    (same key) writes nothing again. Without the spool adapter they stay outbox text."""
    folder = tmp_path / "spool"
    settings = settings_for_tests().model_copy(update={"letter_url": f"spool://{folder}"})
    spool = letter_channel(settings, ledger)
    assert isinstance(spool, SpoolChannel) and folder.is_dir()
    assert channels_from_settings(settings, ledger).routes()["letter"] == "spool"
    router = ChannelRouter(OutboxChannel(ledger), {"letter": spool})
    async with rig(ts_env, ledger, channel=router) as r:
        loan = make_loan(await ts_env.get_current_time(), dpd=5)
        await r.client.start(loan, STANDARD)
        await engage(r, loan)  # type: ignore[arg-type]
        await ts_env.sleep(timedelta(days=31))
        attempts = [a for a in await r.rows(t.contact_attempts, loan_id=loan.loan_id)
                    if a["channel"] == "letter"]
        documents = await r.rows(t.documents, loan_id=loan.loan_id)

    assert sorted(a["step"] for a in attempts) == ["demand-letter", "final-offer-letter"]
    assert all(a["status"] == "sent" and a["sent_via"] == "spool" for a in attempts)
    files = _spooled(folder)
    assert len(files["pdf"]) == len(files["json"]) == 2
    letters = {d["idempotency_key"]: d for d in documents if d["kind"] == "letter"}
    assert len(letters) == 2
    assert "demand_letter" in {d["kind"] for d in documents}  # the text record stays
    for attempt in attempts:
        kept = letters[f"{attempt['idempotency_key']}:letter"]
        assert kept["mime"] == "application/pdf" and kept["body"] == attempt["body"]
        manifest = next(json.loads(p.read_text()) for p in files["json"]
                        if json.loads(p.read_text())["idempotency_key"]
                        == attempt["idempotency_key"])
        on_disk = (folder / manifest["pdf"]).read_bytes()
        assert on_disk == kept["pdf"]
        assert hashlib.sha256(on_disk).hexdigest() == kept["sha256"] == manifest["sha256"]
        assert attempt["provider_message_id"] == f"spool-{kept['sha256'][:16]}"
        assert manifest["recipient_address"] == loan.borrower.address
        assert manifest["pages"] == page_objects(on_disk) >= 1
        assert "尊敬的" in pdf_text(on_disk)  # zh-CN borrower: the letter is in Chinese

    # a retry of a send that went out: same id, nothing written again
    demand = next(a for a in attempts if a["step"] == "demand-letter")
    message = OutgoingMessage(
        idempotency_key=demand["idempotency_key"], channel="letter",
        recipient=demand["recipient"], subject=demand["subject"], body=demand["body"],
        language=demand["language"], loan_id=loan.loan_id, case_id=demand["case_id"])
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert await spool.send(message) == demand["provider_message_id"]
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    sighting = await spool.find(demand["idempotency_key"])
    assert sighting.known and sighting.message_id == demand["provider_message_id"]
    assert (await spool.find("no-such-key")).known
    assert (await spool.find("no-such-key")).message_id is None

    # a send that died after keeping the PDF but before the spool: the kept bytes go out
    for p in folder.iterdir():
        p.unlink()
    assert await spool.send(message) == demand["provider_message_id"]
    files = _spooled(folder)
    assert len(files["pdf"]) == 1 and len(files["json"]) == 1
    kept = letters[f"{demand['idempotency_key']}:letter"]
    assert files["pdf"][0].read_bytes() == kept["pdf"]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert len([d for d in await ledger.rows(t.documents, loan_id=loan.loan_id)
                if d["kind"] == "letter"]) == 2
