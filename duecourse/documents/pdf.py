"""A letter as a PDF: letterhead, date, address window, subject, body, page numbers.

The body arrives rendered (the jurisdiction's required wording included), so this module
only lays it out; the font is embedded (subset), so the print house prints what we stored.
The output is a pure function of the letter: the same letter gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from babel.dates import format_date
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from duecourse.documents.fonts import FONT_SETTING, LetterFont

FAMILY = "letter"
MIME = "application/pdf"


class GlyphsMissing(ValueError):
    """The letter has characters its font cannot print (they would come out as boxes)."""


@dataclass(frozen=True)
class Letter:
    recipient_address: str
    subject: str | None
    body: str
    language: str
    lender_name: str
    lender_contact: str
    dated: date
    reference: str = ""  # the loan id, printed as "Reference"


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    pages: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


_LABELS = {
    "en": {"reference": "Reference", "contact": "Contact", "page": "Page {n} of {total}"},
    "zh-CN": {"reference": "编号", "contact": "联系方式", "page": "第 {n} 页，共 {total} 页"},  # noqa: RUF001
}


def page_count(data: bytes) -> int:
    """The pages of a PDF this module wrote (fpdf2 writes page objects uncompressed)."""
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", data))


def _labels(language: str) -> dict[str, str]:
    return _LABELS.get(language, _LABELS["en"])


def _locale(language: str) -> str:
    return language.replace("-", "_") if language in _LABELS else "en"


class _Page(FPDF):
    def __init__(self, page_label: str) -> None:
        super().__init__(format="A4", unit="mm")
        self._page_label = page_label

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FAMILY, size=8)
        text = self._page_label.format(n=self.page_no(), total="{nb}")
        self.cell(0, 8, text, align="C")


def render_letter(letter: Letter, font: LetterFont) -> RenderedPdf:
    """Lay the letter out on A4 pages. Raises GlyphsMissing rather than print boxes."""
    text = "".join((letter.recipient_address, letter.subject or "", letter.body,
                    letter.lender_name, letter.lender_contact, letter.reference))
    lacking = font.missing(text)
    if lacking:
        raise GlyphsMissing(f"the letter font ({FONT_SETTING}) has no glyph for {lacking} "
                            "character(s) in this letter")
    labels = _labels(letter.language)
    wrap = WrapMode.CHAR if letter.language.startswith("zh") else WrapMode.WORD
    pdf = _Page(labels["page"])
    pdf.add_font(FAMILY, fname=font.path)
    pdf.set_creation_date(datetime.combine(letter.dated, time(12), tzinfo=UTC))
    pdf.set_lang(letter.language)
    pdf.set_author(letter.lender_name)
    pdf.set_title(letter.subject or letter.lender_name)
    pdf.set_creator("duecourse")
    pdf.set_producer("duecourse")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.add_page()
    width = pdf.epw

    def block(size: float, content: str, height: float, align: str = "L") -> None:
        pdf.set_font(FAMILY, size=size)
        pdf.multi_cell(width, height, content, align=align, wrapmode=wrap,
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    block(14, letter.lender_name, 7)
    block(9, f"{labels['contact']}: {letter.lender_contact}", 5)
    pdf.ln(8)
    block(10, format_date(letter.dated, format="long", locale=_locale(letter.language)), 5,
          align="R")
    if letter.reference:
        block(10, f"{labels['reference']}: {letter.reference}", 5, align="R")
    pdf.ln(4)
    block(11, letter.recipient_address, 6)  # the address window of a C5/DL envelope
    pdf.ln(10)
    if letter.subject:
        block(13, letter.subject, 7)
        pdf.ln(4)
    for paragraph in (p.strip() for p in letter.body.split("\n\n")):
        if paragraph:
            block(11, paragraph, 6, align="J" if wrap is WrapMode.WORD else "L")
            pdf.ln(3)
    return RenderedPdf(data=bytes(pdf.output()), pages=pdf.pages_count)
