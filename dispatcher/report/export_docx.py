"""The report as a DOCX document (python-docx) an office sends as it is: Times New Roman on
A4 landscape, the two-column heading (issuing body and number | national motto, place and
date), the centred title, bordered tables, the signatures and the recipients.

A page cannot hold sixteen figures side by side legibly: a figure column that is empty or
0 on every row of a table is left out of that table, and the document says so."""

from __future__ import annotations

import io

from docx import Document
from docx.document import Document as WordDocument
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt
from docx.table import _Cell
from docx.text.paragraph import Paragraph

from dispatcher.report.build import Report
from dispatcher.report.exports import (
    MOTTO,
    NATION,
    RECIPIENTS,
    SIGNERS,
    Heading,
    Table,
    notes,
    tables,
)

FONT = "Times New Roman"
LEFT_OUT = "Các cột bằng 0 ở mọi dòng của một bảng không in trong bảng đó."


def docx_bytes(report: Report, head: Heading) -> bytes:
    doc = Document()
    _page(doc)
    _heading(doc, head)
    dropped = False
    for table in tables(report):
        shown = _shown_columns(table)
        dropped |= len(shown) < len(table.header)
        _paragraph(doc, table.title, bold=True, before=8)
        _table(doc, table, shown)
    for text in notes(report) + ([LEFT_OUT] if dropped else []):
        _paragraph(doc, text, italic=True, size=11)
    _signature(doc)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _page(doc: WordDocument) -> None:
    section = doc.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Cm(29.7), Cm(21)
    section.left_margin, section.right_margin = Cm(2.5), Cm(1.5)
    section.top_margin = section.bottom_margin = Cm(1.5)
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(13)
    # The font for every script, so Word shows no fallback for Vietnamese letters.
    fonts = normal.element.get_or_add_rPr().get_or_add_rFonts()
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), FONT)


def _format(
    p: Paragraph,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    size: float | None = None,
    centre: bool = False,
    before: float = 0,
) -> Paragraph:
    run = p.add_run(text)
    run.bold, run.italic = bold, italic
    if size:
        run.font.size = Pt(size)
    if centre:
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    p.paragraph_format.space_before = Pt(before)
    p.paragraph_format.space_after = Pt(2)
    return p


def _paragraph(doc: WordDocument, text: str, **style: object) -> Paragraph:
    return _format(doc.add_paragraph(), text, **style)  # type: ignore[arg-type]


def _in_cell(cell: _Cell, text: str, first: bool = False, **style: object) -> Paragraph:
    p = cell.paragraphs[0] if first else cell.add_paragraph()
    return _format(p, text, **style)  # type: ignore[arg-type]


def _frame(doc: WordDocument, widths: tuple[float, float]) -> tuple[_Cell, _Cell]:
    """Two cells side by side without borders (the heading, the signatures)."""
    grid = doc.add_table(rows=1, cols=2)
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False
    left, right = grid.rows[0].cells
    left.width, right.width = Cm(widths[0]), Cm(widths[1])
    return left, right


def _heading(doc: WordDocument, head: Heading) -> None:
    left, right = _frame(doc, (10.0, 15.5))
    _in_cell(left, head.issuer, first=True, bold=True, centre=True)
    _in_cell(left, head.number_line, centre=True)
    _in_cell(right, NATION, first=True, bold=True, centre=True)
    _in_cell(right, MOTTO, bold=True, centre=True)
    _in_cell(right, head.date_line, italic=True, centre=True, before=6)
    _paragraph(doc, head.title, bold=True, size=15, centre=True, before=14)
    _paragraph(doc, head.subject, bold=True, centre=True)
    _paragraph(doc, head.plan_title, bold=True, centre=True)
    _paragraph(doc, head.period_line, centre=True, before=4)
    _paragraph(doc, head.unit_line, centre=True)


def _shown_columns(table: Table) -> list[int]:
    """The label columns, and each figure column with a value other than 0 on some row."""
    return [
        i
        for i in range(len(table.header))
        if i < table.labels or any(r[i] not in ("", 0) for r in table.rows)
    ]


def _table(doc: WordDocument, table: Table, shown: list[int]) -> None:
    grid = doc.add_table(rows=1 + len(table.rows), cols=len(shown))
    grid.style = doc.styles["Table Grid"]
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    for j, i in enumerate(shown):
        _in_cell(grid.rows[0].cells[j], table.header[i], first=True, bold=True, size=9, centre=True)
    for r, values in enumerate(table.rows, start=1):
        last = table.total_row and r == len(table.rows)
        for j, i in enumerate(shown):
            value = values[i]
            p = _in_cell(grid.rows[r].cells[j], _text(value), first=True, size=9, bold=last)
            if i >= table.labels and not isinstance(value, str):
                p.alignment = WD_ALIGN_PARAGRAPH.RIGHT


def _text(value: int | float | str) -> str:
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")  # a decimal comma, as Vietnamese writes it
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    return value


def _signature(doc: WordDocument) -> None:
    (who_left, how_left), (who_right, how_right) = SIGNERS
    _paragraph(doc, "", before=6)
    left, right = _frame(doc, (12.75, 12.75))
    _in_cell(left, who_left, first=True, bold=True, centre=True)
    _in_cell(left, how_left, italic=True, size=11, centre=True)
    _in_cell(right, who_right, first=True, bold=True, centre=True)
    _in_cell(right, how_right, italic=True, size=11, centre=True)
    for _ in range(4):  # room to sign
        _in_cell(left, "")
    for i, text in enumerate(RECIPIENTS):
        _paragraph(doc, text, bold=i == 0, italic=i == 0, size=12 if i == 0 else 11)
