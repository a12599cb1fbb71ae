"""The report as an office sends it — an XLSX sheet, a DOCX document or one standalone HTML
page — each in the form of a Vietnamese administrative report: the issuing body and the
national motto, the number and the place and date, the title, the tables, the notes and
the signatures. What every format shows is decided here; export_*.py only lay it out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from coso.clock import zone
from coso.errors import InputError
from dispatcher.report.build import DIMENSIONS, Report
from dispatcher.report.csv_table import (
    COLUMNS,
    DIMENSION_LABELS,
    TARGET_HEADER,
    body,
    cell,
    channel_rows,
    header,
    target_rows,
)
from dispatcher.report.periods import DATE

FORMATS = ("xlsx", "docx", "html")
NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
SIGNERS = (
    ("NGƯỜI LẬP BÁO CÁO", "(Ký, ghi rõ họ tên)"),
    ("THỦ TRƯỞNG CƠ QUAN", "(Ký tên, đóng dấu)"),
)
RECIPIENTS = ("Nơi nhận:", "- Sở Nội vụ (để tổng hợp);", "- Lưu: VT.")
BLANK = "……"  # left for the hand that fills it in (no place given)
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html; charset=utf-8",
}


@dataclass(frozen=True)
class Heading:
    issuer: str  # the issuing body, upper case as the heading writes it
    number_line: str  # "Số: 12/BC-UBND"
    date_line: str  # "Lạng Sơn, ngày 05 tháng 07 năm 2021"
    title: str  # "BÁO CÁO"
    subject: str  # "Kết quả thực hiện Kế hoạch số 95/KH-UBND"
    plan_title: str
    period_line: str
    unit_line: str


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[int | float | str]]
    labels: int  # how many leading columns are words, not figures
    total_row: bool = False  # the last row sums the others


def number_line(plan_number: str, number: str) -> str:
    """The report's number: as given when it is whole ("12/BC-UBND"), else with the
    plan's issuer suffix ("95/KH-UBND" → "12/BC-UBND"); left blank to be numbered by hand
    at registration when none is given."""
    if "/" in number:
        return f"Số: {number}"
    suffix = plan_number.split("-", 1)[1] if "-" in plan_number else ""
    kind = f"BC-{suffix}" if suffix else "BC"
    return f"Số: {number or '     '}/{kind}"


def date_line(place: str, at: datetime, tz: str) -> str:
    local = at.astimezone(zone(tz))
    return f"{place or BLANK}, ngày {local:%d} tháng {local:%m} năm {local:%Y}"


def heading(report: Report, *, number: str = "", place: str = "") -> Heading:
    p = report.period
    return Heading(
        issuer=(report.issuer or BLANK).upper(),
        number_line=number_line(report.plan_number, number.strip()),
        date_line=date_line(place.strip(), report.generated_at, report.zone),
        title="BÁO CÁO",
        subject=f"Kết quả thực hiện Kế hoạch số {report.plan_number}",
        plan_title=report.plan_title,
        period_line=(
            f"Kỳ báo cáo: từ ngày {p.start:{DATE}} đến ngày {p.end:{DATE}}"
            if f"{p.start:{DATE}}" in p.label
            else f"Kỳ báo cáo: {p.label} (từ ngày {p.start:{DATE}} đến ngày {p.end:{DATE}})"
        ),
        unit_line=(
            f"Đơn vị: {report.unit_name} ({report.unit})"
            if report.unit and report.unit_name != report.unit
            else f"Đơn vị: {report.unit}"
            if report.unit
            else "Đơn vị: toàn bộ địa bàn của kế hoạch"
        ),
    )


def tables(report: Report) -> list[Table]:
    """The lines, the totals per channel (with all channels when there are several), and
    the targets with the units below them."""
    dims = " và ".join(DIMENSION_LABELS[d].lower() for d in report.by if d in DIMENSIONS)
    found = [Table(f"I. Kết quả theo {dims}", header(report), list(body(report)), len(report.by))]
    totals = list(channel_rows(report))
    several = len(report.channels) > 1
    if several:
        whole = report.total
        totals.append(["Tổng cộng", *(cell(whole.value(k)) for k in COLUMNS)])
    found.append(
        Table(
            "II. Tổng hợp theo kênh",
            ["Kênh", *header(report)[len(report.by) :]],
            totals,
            1,
            total_row=several,
        )
    )
    if report.targets:
        found.append(
            Table(
                "III. Kết quả so với chỉ tiêu của kế hoạch",
                TARGET_HEADER,
                list(target_rows(report)),
                2,
            )
        )
    return found


def notes(report: Report) -> list[str]:
    lines = [report.mapping_note, *report.notes] if report.mapping_note else list(report.notes)
    if not report.targets:
        lines.append("Kế hoạch không đặt chỉ tiêu về số lượt.")
    return lines


def render(report: Report, format: str, *, number: str = "", place: str = "") -> bytes | str:
    """The report in `format` (xlsx and docx as bytes, html as text)."""
    head = heading(report, number=number, place=place)
    if format == "xlsx":
        from dispatcher.report.export_xlsx import xlsx_bytes

        return xlsx_bytes(report, head)
    if format == "docx":
        from dispatcher.report.export_docx import docx_bytes

        return docx_bytes(report, head)
    if format == "html":
        from dispatcher.report.export_html import html_page

        return html_page(report, head)
    raise InputError("format", format, f"không phải một trong {', '.join(FORMATS)}")
