"""The report as one standalone HTML page: inline CSS, bar charts drawn here as inline SVG,
no script and nothing fetched from anywhere; readable on a 390-px phone (wide tables scroll
inside their box). The console's report page shows the same pieces (`charts`, `tables_html`)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from dispatcher.report.build import Report
from dispatcher.report.csv_table import PER_LABELS
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

MOST_BARS = 30  # lines drawn in the chart (the table has them all)
ROW = 38  # pixels per bar, its label above it
BAR = 70  # per cent of the chart's width for a full bar; the figure follows
DONE_COLOUR, EXPECTED_COLOUR, SHORT_COLOUR = "#1b6e20", "#d9d9d9", "#a50e0e"

# The tables' and charts' look, shared with the console's report page.
PIECES_STYLE = """
.scroll{overflow-x:auto;max-width:100%}
table.report{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem;width:auto}
table.report th,table.report td{border:1px solid #888;padding:.25rem .4rem;vertical-align:top}
table.report th{background:#eee;font-weight:700;text-align:center}
table.report td.n{text-align:right;white-space:nowrap}
table.report th{min-width:4.5rem}
table.report td:not(.n){min-width:8rem}
table.report tr.total td{font-weight:700}
figure.chart{margin:.6rem 0 1.2rem}
figure.chart svg{display:block;max-width:44rem}
figure.chart figcaption{font-weight:700;margin-bottom:.3rem}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem}
.notes{font-style:italic}
"""
STYLE = (
    """
body{font-family:"Times New Roman",serif;margin:0;color:#1b1b1b;background:#fff}
main{max-width:64rem;margin:0 auto;padding:1rem}
.heading{display:flex;flex-wrap:wrap;gap:1rem;justify-content:space-between;text-align:center}
.heading div{flex:1 1 14rem}
.heading p{margin:.15rem 0}
.title{text-align:center}
.title h1{font-size:1.4rem;margin:1.2rem 0 .2rem}
.title p{margin:.15rem 0}
.signature{display:flex;flex-wrap:wrap;gap:1rem;text-align:center;margin-top:1.5rem}
.signature div{flex:1 1 12rem;min-height:7rem}
.recipients{font-size:.9rem}
"""
    + PIECES_STYLE
)


def html_page(report: Report, head: Heading) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="vi"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(head.title)} {escape(report.plan_number)} – "
        f"{escape(report.period.label)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        heading_html(head),
        charts(report),
        tables_html(report),
        notes_html(report),
        signature_html(),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def heading_html(head: Heading) -> Markup:
    return Markup(
        '<section class="heading">'
        f"<div><p><strong>{escape(head.issuer)}</strong></p><p>{escape(head.number_line)}</p></div>"
        f"<div><p><strong>{NATION}</strong></p><p><strong>{MOTTO}</strong></p>"
        f"<p><em>{escape(head.date_line)}</em></p></div></section>"
        '<section class="title">'
        f"<h1>{escape(head.title)}</h1><p><strong>{escape(head.subject)}</strong></p>"
        f"<p><strong>{escape(head.plan_title)}</strong></p>"
        f"<p>{escape(head.period_line)}</p><p>{escape(head.unit_line)}</p></section>"
    )


def _number(value: int | float | str) -> str:
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    return escape(value)


def table_html(table: Table) -> Markup:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = []
    for i, values in enumerate(table.rows):
        total = table.total_row and i == len(table.rows) - 1
        cells = "".join(
            f"<td>{escape(str(v))}</td>"
            if j < table.labels or isinstance(v, str)
            else f'<td class="n">{_number(v)}</td>'
            for j, v in enumerate(values)
        )
        rows.append(f'<tr class="total">{cells}</tr>' if total else f"<tr>{cells}</tr>")
    return Markup(
        f"<h2>{escape(table.title)}</h2>"
        f'<div class="scroll"><table class="report"><tr>{head}</tr>{"".join(rows)}</table></div>'
    )


def tables_html(report: Report) -> Markup:
    return Markup("".join(table_html(t) for t in tables(report)))


def notes_html(report: Report) -> Markup:
    return Markup("".join(f'<p class="notes">{escape(n)}</p>' for n in notes(report)))


def signature_html() -> Markup:
    blocks = "".join(
        f"<div><p><strong>{who}</strong></p><p><em>{how}</em></p></div>" for who, how in SIGNERS
    )
    recipients = "<br>".join(escape(r) for r in RECIPIENTS[1:])
    return Markup(
        f'<section class="signature">{blocks}</section>'
        f'<p class="recipients"><strong><em>{RECIPIENTS[0]}</em></strong><br>{recipients}</p>'
    )


def _svg(rows: int, title: str, body: str) -> str:
    """Lengths in per cent of the chart's width and text in pixels: the bars follow the
    page's width while the words keep a size one reads on a phone."""
    return (
        f'<svg width="100%" height="{ROW * rows + 6}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="13">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _short(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _bar_row(i: int, label: str, parts: list[tuple[float, str]], figure: str) -> str:
    """One row: its label, then bars from the left (each a share of BAR per cent, drawn
    in order so the later ones lie on top) and the figure after them."""
    y = ROW * i + 2
    bars = "".join(
        f'<rect x="0" y="{y + 17}" width="{BAR * min(max(share, 0.0), 1.0):.2f}%" height="13" '
        f'fill="{colour}"/>'
        for share, colour in parts
    )
    return (
        f'<text x="0" y="{y + 13}">{escape(_short(label))}</text>{bars}'
        f'<text x="{BAR + 2}%" y="{y + 28}">{escape(figure)}</text>'
    )


def done_chart(report: Report) -> Markup:
    """Per line: the deliveries planned (grey) and those that reached people (green)."""
    lines = report.lines[:MOST_BARS]
    if not lines:
        return Markup("")
    scale = max(int(line.tally.value("expected") or 0) for line in lines) or 1
    rows = []
    for i, line in enumerate(lines):
        expected = int(line.tally.value("expected") or 0)
        done = int(line.tally.value("done") or 0)
        pct = f" ({100 * done / expected:.0f}%)" if expected else ""
        rows.append(
            _bar_row(
                i,
                " · ".join(line.labels),
                [(expected / scale, EXPECTED_COLOUR), (done / scale, DONE_COLOUR)],
                f"{done}/{expected}{pct}",
            )
        )
    title = "Đã đến người nghe so với kế hoạch"
    more = (
        f"<p>Biểu đồ vẽ {MOST_BARS} dòng đầu trong {len(report.lines)} dòng.</p>"
        if len(report.lines) > MOST_BARS
        else ""
    )
    legend = (
        f'<p class="legend"><span style="background:{DONE_COLOUR}"></span>đã đến người nghe'
        f'<span style="background:{EXPECTED_COLOUR}"></span>kế hoạch</p>'
    )
    return Markup(
        f'<figure class="chart"><figcaption>{title}</figcaption>{legend}'
        f"{_svg(len(lines), title, ''.join(rows))}{more}</figure>"
    )


def target_chart(report: Report) -> Markup:
    """Each target's percentage achieved (red below 100 %)."""
    if not report.targets:
        return Markup("")
    rows = []
    shown = [t for t in report.targets if t.percent is not None]
    if not shown:
        return Markup("")
    for i, t in enumerate(shown):
        assert t.percent is not None
        colour = DONE_COLOUR if t.percent >= 100 else SHORT_COLOUR
        label = f"{t.channel_title}: {t.count} lượt/{PER_LABELS.get(t.per, t.per)}"
        rows.append(
            _bar_row(
                i,
                label,
                [(1.0, EXPECTED_COLOUR), (t.percent / 100, colour)],
                f"{_number(t.percent)}%",
            )
        )
    title = "Tỷ lệ đạt chỉ tiêu"
    return Markup(
        f'<figure class="chart"><figcaption>{title}</figcaption>'
        f"{_svg(len(shown), title, ''.join(rows))}</figure>"
    )


def charts(report: Report) -> Markup:
    return Markup(done_chart(report) + target_chart(report))
