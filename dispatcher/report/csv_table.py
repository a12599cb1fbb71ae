"""A report as rows of cells: the table every format shows (CSV, the terminal, XLSX, DOCX
and HTML lay out the same rows)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from dispatcher.report.build import Report
from dispatcher.report.figures import FIGURES, LABELS

DIMENSION_LABELS = {
    "channel": "Kênh",
    "unit": "Đơn vị",
    "week": "Tuần",
    "month": "Tháng",
    "content": "Nội dung",
}
PER_LABELS = {"day": "ngày", "week": "tuần", "month": "tháng", "plan": "cả kế hoạch"}
COLUMNS = tuple(key for key, _, _ in FIGURES)


def header(report: Report) -> list[str]:
    return [DIMENSION_LABELS[d] for d in report.by] + [LABELS[k] for k in COLUMNS]


def cell(value: int | float | None) -> int | float | str:
    return "" if value is None else value


def body(report: Report) -> Iterator[list[int | float | str]]:
    for line in report.lines:
        yield [*line.labels, *(cell(line.tally.value(k)) for k in COLUMNS)]


def channel_rows(report: Report) -> Iterator[list[int | float | str]]:
    """Totals per channel, then all channels."""
    for channel, tally in report.channels.items():
        yield [
            report.channel_titles.get(channel, channel),
            *(cell(tally.value(k)) for k in COLUMNS),
        ]


TARGET_HEADER = [
    "Kênh",
    "Chỉ tiêu",
    "Số kỳ",
    "Số đơn vị",
    "Yêu cầu",
    "Đạt",
    "Tỷ lệ (%)",
    "Đơn vị chưa đạt",
]


def target_rows(report: Report) -> Iterator[list[int | float | str]]:
    for t in report.targets:
        below = "; ".join(f"{u.name} ({u.achieved}/{u.required})" for u in t.below)
        yield [
            t.channel_title,
            f"{t.count} lượt mỗi {PER_LABELS.get(t.per, t.per)} ở mỗi đơn vị",
            t.periods,
            t.units,
            t.required,
            t.achieved,
            "—" if t.percent is None else t.percent,
            below,
        ]


def csv_text(report: Report) -> str:
    """The lines, then the channels' totals, then the targets; UTF-8 with a BOM for Excel."""
    buffer = io.StringIO()
    w = csv.writer(buffer)
    w.writerow([f"Báo cáo kế hoạch {report.plan_number}", report.period.label])
    w.writerow(header(report))
    w.writerows(body(report))
    w.writerow([])
    w.writerow(["Tổng theo kênh", *(LABELS[k] for k in COLUMNS)])
    w.writerows(channel_rows(report))
    if report.targets:
        w.writerow([])
        w.writerow(TARGET_HEADER)
        w.writerows(target_rows(report))
    return "\ufeff" + buffer.getvalue()
