"""The report as one XLSX sheet (openpyxl) in the form of an administrative report:
figures are numbers (an office sums and charts them), header rows bold, widths set, A4
landscape fitted to the page's width when printed."""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

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
THIN = Side(style="thin", color="808080")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
HEADER_FILL = PatternFill("solid", fgColor="E8E8E8")
CENTRE = Alignment(horizontal="center", vertical="center", wrap_text=True)
DECIMAL_COLUMNS = {"Phút phát sóng", "Tỷ lệ (%)"}


def xlsx_bytes(report: Report, head: Heading) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Báo cáo"
    found = tables(report)
    width = max(len(t.header) for t in found)
    left = max(2, min(4, width // 3))  # the heading's left block: columns 1..left
    row = _heading(sheet, head, width, left)
    for table in found:
        row = _table(sheet, table, row + 1)
    row += 1
    for text in notes(report):
        _merged(sheet, row, 1, width, text, Font(name=FONT, italic=True, size=11), wrap=True)
        row += 1
    _signature(sheet, row + 1, width, left)
    _widths(sheet, found, width)
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _merged(
    sheet: Worksheet,
    row: int,
    first: int,
    last: int,
    value: str,
    font: Font,
    *,
    wrap: bool = False,
    centre: bool = False,
) -> None:
    if last > first:
        sheet.merge_cells(start_row=row, start_column=first, end_row=row, end_column=last)
    cell = sheet.cell(row=row, column=first, value=value)
    cell.font = font
    cell.alignment = Alignment(
        horizontal="center" if centre else "left", vertical="top", wrap_text=wrap
    )


def _heading(sheet: Worksheet, head: Heading, width: int, left: int) -> int:
    bold = Font(name=FONT, bold=True, size=12)
    plain = Font(name=FONT, size=12)
    italic = Font(name=FONT, italic=True, size=12)
    blocks = [
        (head.issuer, bold, NATION, bold),
        ("", plain, MOTTO, bold),
        (head.number_line, plain, head.date_line, italic),
    ]
    for i, (text_left, font_left, text_right, font_right) in enumerate(blocks, start=1):
        _merged(sheet, i, 1, left, text_left, font_left, centre=True)
        _merged(sheet, i, left + 1, width, text_right, font_right, centre=True)
    title = [
        (head.title, Font(name=FONT, bold=True, size=14)),
        (head.subject, Font(name=FONT, bold=True, size=12)),
        (head.plan_title, Font(name=FONT, bold=True, size=12)),
        (head.period_line, plain),
        (head.unit_line, plain),
    ]
    for i, (text, font) in enumerate(title, start=5):
        _merged(sheet, i, 1, width, text, font, centre=True)
    return 5 + len(title)


def _table(sheet: Worksheet, table: Table, row: int) -> int:
    width = len(table.header)
    _merged(sheet, row, 1, width, table.title, Font(name=FONT, bold=True, size=12))
    row += 1
    for col, text in enumerate(table.header, start=1):
        cell = sheet.cell(row=row, column=col, value=text)
        cell.font = Font(name=FONT, bold=True, size=11)
        cell.fill = HEADER_FILL
        cell.border = BOX
        cell.alignment = CENTRE
    sheet.row_dimensions[row].height = 45
    for i, values in enumerate(table.rows):
        row += 1
        last = table.total_row and i == len(table.rows) - 1
        for col, value in enumerate(values, start=1):
            cell = sheet.cell(row=row, column=col, value=None if value == "" else value)
            cell.border = BOX
            cell.font = Font(name=FONT, size=11, bold=last)
            if col <= table.labels or isinstance(value, str):
                cell.alignment = Alignment(vertical="top", wrap_text=True)
            elif table.header[col - 1] in DECIMAL_COLUMNS:
                cell.number_format = "0.0"
            else:
                cell.number_format = "#,##0"
    return row + 1


def _signature(sheet: Worksheet, row: int, width: int, left: int) -> None:
    (who_left, how_left), (who_right, how_right) = SIGNERS
    bold = Font(name=FONT, bold=True, size=12)
    italic = Font(name=FONT, italic=True, size=11)
    _merged(sheet, row, 1, left, who_left, bold, centre=True)
    _merged(sheet, row, left + 1, width, who_right, bold, centre=True)
    _merged(sheet, row + 1, 1, left, how_left, italic, centre=True)
    _merged(sheet, row + 1, left + 1, width, how_right, italic, centre=True)
    row += 6  # room to sign
    for i, text in enumerate(RECIPIENTS):
        font = Font(name=FONT, size=10, bold=i == 0, italic=i == 0)
        _merged(sheet, row + i, 1, left, text, font)


def _widths(sheet: Worksheet, found: list[Table], width: int) -> None:
    labels = max(t.labels for t in found)
    for col in range(1, width + 1):
        sheet.column_dimensions[get_column_letter(col)].width = 30 if col <= labels else 12
    for t in found:
        if t.header[-1] == "Đơn vị chưa đạt":  # names of units, one after another
            sheet.column_dimensions[get_column_letter(len(t.header))].width = 40
