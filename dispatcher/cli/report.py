"""`coso report PLAN`: the plan's figures for a period and a unit, from the activity log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from coso.commands import current_settings, guard, open_database, out
from coso.errors import InputError
from coso.names import nfc

FORMATS = ("table", "csv", "xlsx", "docx", "html")
BINARY = {"xlsx", "docx"}


@guard
def report_command(
    plan: str,
    period: Annotated[
        str | None, typer.Option(help="A month 05/2021, a quarter Q2/2021 or a year 2021.")
    ] = None,
    since: Annotated[str | None, typer.Option("--from", help="From this day (dd/mm/yyyy).")] = None,
    until: Annotated[str | None, typer.Option(help="To this day, included (dd/mm/yyyy).")] = None,
    unit: Annotated[
        str | None,
        typer.Option(help="A unit of any level (its communes roll up), or an organisation."),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Lines by channel, unit, week, month, content (a,b).")
    ] = None,
    legacy_units: Annotated[
        bool, typer.Option(help="Group by the units as the plan named them (before 2025).")
    ] = False,
    format: Annotated[str, typer.Option(help="table, csv, xlsx, docx or html.")] = "table",
    output: Annotated[
        Path | None, typer.Option("--out", help="Write here (xlsx and docx need it).")
    ] = None,
    number: Annotated[str, typer.Option(help="The report's number (số báo cáo).")] = "",
    place: Annotated[str, typer.Option(help='Where it is signed ("Lạng Sơn").')] = "",
    check: Annotated[
        bool, typer.Option(help="Only compare the plan's outcome counts with the log.")
    ] = False,
    rebuild: Annotated[
        bool, typer.Option(help="Only count the plan's outcomes again from the log.")
    ] = False,
) -> None:
    """The plan's report: what reached people, per channel, unit and period, against its
    targets (docs/report.md defines every figure)."""
    from dispatcher.queries import find_plan
    from dispatcher.report.build import CURRENT, LEGACY, build_report, parse_by
    from dispatcher.report.periods import parse_period

    if format not in FORMATS:
        raise InputError("format", format, f"không phải một trong {', '.join(FORMATS)}")
    if format in BINARY and output is None:
        raise InputError("out", "", f"báo cáo {format} cần --out TỆP")
    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    if check or rebuild:
        _counts(engine, p, rebuild=rebuild)
        return
    window = parse_period(period, since, until, p.period_start, p.period_end)
    report = build_report(
        engine,
        p,
        window,
        unit=unit,
        by=parse_by(by),
        units=LEGACY if legacy_units else CURRENT,
        now=datetime.now(UTC),
    )
    if format == "table":
        _print_table(report)
        return
    data = _render(report, format, number=number, place=place)
    if output is None:
        out.file.write(data if isinstance(data, str) else data.decode())
        return
    if isinstance(data, str):
        output.write_text(data, encoding="utf-8")
    else:
        output.write_bytes(data)
    out.print(f"{output}: {report.plan_number}, {report.period.label}")


def _counts(engine: object, plan: object, *, rebuild: bool) -> None:
    """`--rebuild`: the plan's outcome counts, counted again from the log; `--check`: where
    they and the log disagree (exit code 1 if anywhere)."""
    from dispatcher.outcome_counts import differences, recount

    number, plan_id = plan.number, plan.id  # type: ignore[attr-defined]
    if rebuild:
        rows = recount(engine, plan_id)  # type: ignore[arg-type]
        out.print(f"{number}: đã đếm lại kết quả từ nhật ký ({rows} dòng).")
        return
    wrong = differences(engine, plan_id)  # type: ignore[arg-type]
    if not wrong:
        out.print(f"{number}: số đếm kết quả khớp với nhật ký.")
        return
    for d in wrong:
        _, zone, channel, unit, _, state, event, content, day = d.key
        out.print(
            f"ngày {day:%d/%m/%Y} ({zone}), {channel}, đơn vị {unit or '—'}, "
            f"nội dung {content or '—'}, {state} ({event}): "
            f"nhật ký {d.in_log}, số đếm {d.counted}",
            highlight=False,
        )
    out.print(
        f"{number}: {len(wrong)} số đếm không khớp với nhật ký; "
        f"coso report {number} --rebuild đếm lại."
    )
    raise typer.Exit(1)


def _render(report: object, format: str, *, number: str, place: str) -> str | bytes:
    from dispatcher.report.csv_table import csv_text

    if format == "csv":
        return csv_text(report)  # type: ignore[arg-type]
    from dispatcher.report import exports

    return exports.render(report, format, number=number, place=place)  # type: ignore[arg-type]


def _print_table(report: object) -> None:
    from rich.table import Table

    from dispatcher.report.build import Report
    from dispatcher.report.csv_table import (
        TARGET_HEADER,
        body,
        channel_rows,
        header,
        target_rows,
    )

    assert isinstance(report, Report)
    scope = f" · {report.unit_name}" if report.unit else ""
    table = Table(*header(report), title=f"{report.plan_number}: {report.period.label}{scope}")
    for row in body(report):
        table.add_row(*(str(c) for c in row))
    out.print(table)
    totals = Table(*(["Kênh", *header(report)[len(report.by) :]]), title="Tổng theo kênh")
    for row in channel_rows(report):
        totals.add_row(*(str(c) for c in row))
    out.print(totals)
    if report.targets:
        targets = Table(*TARGET_HEADER, title="Chỉ tiêu của kế hoạch")
        for row in target_rows(report):
            targets.add_row(*(str(c) for c in row))
        out.print(targets)
    out.print(report.mapping_note)
    for note in report.notes:
        out.print(note)
