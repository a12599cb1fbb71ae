"""`coso endpoints`, `coso units` and `coso content`: what plans send, and to where."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coso.clock import local_text
from coso.commands import current_settings, guard, not_a_folder, open_database, out
from coso.labels import content_state_label
from coso.names import check_arguments, nfc

endpoints_app = typer.Typer(no_args_is_help=True, help="Endpoints: import, list.")
units_app = typer.Typer(no_args_is_help=True, help="Administrative units.")
content_app = typer.Typer(no_args_is_help=True, help="Content items: list, approve, retire.")


@content_app.command("list")
@guard
def content_list(plan: str) -> None:
    """A plan's content items and their approval state."""
    check_arguments(plan=plan)
    from content.approval import list_content
    from dispatcher.queries import find_plan

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    table = Table("key", "kind", "title", "state", "approved by", "approved at")
    for c in list_content(engine, p.id):
        table.add_row(
            c.key,
            c.kind,
            c.title,
            content_state_label(c.state),
            c.approved_by or "",
            local_text(c.approved_at, p.zone) if c.approved_at else "",
        )
    out.print(table)


@content_app.command("approve")
@guard
def content_approve(
    plan: str, key: str, by: Annotated[str, typer.Option("--by", help="Who approves it.")]
) -> None:
    """Approve a draft content item so schedules can send it (with its audio, when one of
    them is on a channel that plays audio)."""
    check_arguments(plan=plan, key=key, by=by)
    from content.approval import find_content, set_state
    from dispatcher.queries import find_plan
    from schedules.editing import check_approvable

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    check_approvable(engine, p.number, find_content(engine, p.id, nfc(key)))
    set_state(engine, p.id, key, "approved", by, datetime.now(UTC))
    out.print(f"{key}: approved by {by}")


@content_app.command("retire")
@guard
def content_retire(plan: str, key: str) -> None:
    """Retire a content item: deliveries not yet sent fail instead of going out."""
    check_arguments(plan=plan, key=key)
    from content.approval import set_state
    from dispatcher.queries import find_plan

    engine = open_database(current_settings())
    set_state(engine, find_plan(engine, nfc(plan)).id, key, "retired", "", datetime.now(UTC))
    out.print(f"{key}: retired")


@endpoints_app.command("import")
@guard
def endpoints_import(file: Path) -> None:
    """Add endpoints from a CSV (channel,address,name,unit); all or nothing."""
    from channels.endpoints import add_endpoints, read_endpoints_csv

    engine = open_database(current_settings())
    rows = read_endpoints_csv(engine, not_a_folder(file))
    added = add_endpoints(engine, rows, datetime.now(UTC))
    out.print(f"{added} endpoints added, {len(rows) - added} already known, from {file}")


@endpoints_app.command("list")
@guard
def endpoints_list(
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    unit: Annotated[str | None, typer.Option(help="Only in this unit (and below).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """Endpoints, by channel and address."""
    check_arguments(channel=channel, unit=unit)
    from channels.endpoints import list_endpoints

    engine = open_database(current_settings())
    table = Table("id", "channel", "address", "name", "unit", "enabled")
    for e in list_endpoints(engine, channel, unit, limit):
        table.add_row(
            str(e.id), e.channel, e.address, e.name, e.unit_code or "", "yes" if e.enabled else "no"
        )
    out.print(table)


@units_app.command("import-legacy")
@guard
def units_import_legacy(file: Path) -> None:
    """Import pre-2025 units with their mapping to current codes (CSV)."""
    from coso.units import import_legacy_units

    n = import_legacy_units(open_database(current_settings()), not_a_folder(file))
    out.print(f"imported {n} legacy units from {file}")


@units_app.command("show")
@guard
def units_show(
    unit: Annotated[
        str,
        typer.Argument(
            help="A unit's code (20, 06040, or a pre-2025 code) or its name, with or "
            'without diacritics ("Lạng Sơn", "lang son").'
        ),
    ],
    limit: Annotated[int, typer.Option(min=1, help="List at most this many units.")] = 50,
    show_all: Annotated[bool, typer.Option("--all", help="List every unit below it.")] = False,
) -> None:
    """A unit and every current unit under it (for a pre-2025 unit: the ones it became)."""
    check_arguments(unit=unit)
    from coso.units import LEGACY_DATASET, find_unit, resolve_unit_codes, unit_names

    engine = open_database(current_settings())
    found = find_unit(engine, unit)
    codes = sorted(resolve_unit_codes(engine, [found.code])[found.code] - {found.code})
    names = unit_names(engine, codes)
    if found.dataset == LEGACY_DATASET:
        what = f"became {len(codes)} current unit(s)"
    else:
        what = f"{len(codes)} current unit(s) below it" if codes else "no unit below it"
    out.print(f"{found.label()}: {what}", soft_wrap=True)
    shown = codes if show_all else codes[:limit]
    for c in shown:
        out.print(f"  {c}  {names.get(c, '')}", soft_wrap=True)
    if len(shown) < len(codes):
        out.print(
            f"{len(shown)} of {len(codes)} shown; --all lists every one (or --limit N)",
            soft_wrap=True,
        )


@content_app.command("audio")
@guard
def content_audio(
    plan: str,
    key: str,
    file: Path,
    intro: Annotated[Path | None, typer.Option(help="Jingle played before.")] = None,
    outro: Annotated[Path | None, typer.Option(help="Jingle played after.")] = None,
) -> None:
    """Prepare an audio file (one format, normalised loudness, jingles) as a content item's
    audio for loudspeakers. A corrupt, truncated or unsupported file is refused."""
    check_arguments(plan=plan, key=key)
    from content.approval import find_content
    from content.media import attach_audio
    from dispatcher.queries import find_plan

    settings = current_settings()
    engine = open_database(settings)
    item = find_content(engine, find_plan(engine, nfc(plan)).id, nfc(key))
    for path, name in ((file, "file"), (intro, "intro"), (outro, "outro")):
        if path is not None:
            not_a_folder(path, name)
    asset = attach_audio(engine, settings.media, item.id, file, datetime.now(UTC), intro, outro)
    out.print(
        f"{key}: {asset.duration_seconds:.1f} s at {asset.loudness_lufs:.1f} LUFS, "
        f"sha256 {asset.sha256[:12]}…, {asset.size_bytes:,} bytes"
    )
