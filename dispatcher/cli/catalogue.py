"""`coso endpoints`, `coso units` and `coso content`: what plans send, and to where."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coso.clock import local_text
from coso.commands import current_settings, guard, open_database, out
from coso.csvfile import not_a_folder
from coso.errors import InputError
from coso.labels import content_state_label
from coso.names import check_arguments, nfc

endpoints_app = typer.Typer(no_args_is_help=True, help="Endpoints: import, list.")
units_app = typer.Typer(no_args_is_help=True, help="Administrative units.")
content_app = typer.Typer(
    no_args_is_help=True, help="Content items: list, edit, versions, approve, retire, audio, speak."
)


@content_app.command("list")
@guard
def content_list(plan: str) -> None:
    """A plan's content items and their approval state."""
    check_arguments(plan=plan)
    from content.approval import list_content
    from content.versions import pending_draft
    from dispatcher.queries import find_plan

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    table = Table("key", "kind", "title", "state", "version", "approved by", "approved at")
    for c in list_content(engine, p.id):
        draft = pending_draft(engine, c.id)
        table.add_row(
            c.key,
            c.kind,
            c.title,
            content_state_label(c.state),
            str(c.version) + (f" (nháp {draft.version} chờ duyệt)" if draft else ""),
            c.approved_by or "",
            local_text(c.approved_at, p.zone) if c.approved_at else "",
        )
    out.print(table)


@content_app.command("edit")
@guard
def content_edit(
    plan: str,
    key: str,
    title: Annotated[str | None, typer.Option("--title", help="Tiêu đề mới.")] = None,
    body: Annotated[str | None, typer.Option("--body", help="Nội dung mới.")] = None,
    body_file: Annotated[
        Path | None, typer.Option("--body-file", help="Nội dung mới, đọc từ tệp (UTF-8).")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Người sửa (mặc định: tên đăng nhập).")
    ] = None,
) -> None:
    """Sửa nội dung: tạo phiên bản mới. Nội dung đã duyệt vẫn được gửi như cũ cho tới khi
    phiên bản mới được duyệt (coso content approve)."""
    check_arguments(plan=plan, key=key, by=by)
    if body is not None and body_file is not None:
        raise InputError("body-file", str(body_file), "chỉ dùng một trong --body và --body-file")
    if body_file is not None:
        from coso.csvfile import read_text

        body = read_text(not_a_folder(body_file, "body-file"))
    if title is None and body is None:
        raise InputError("title", "", "cần --title, --body hoặc --body-file")
    from content.versions import edit_content
    from dispatcher.queries import find_plan

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    editor = by if by is not None else login_name()
    version = edit_content(engine, p.id, key, title, body, editor, datetime.now(UTC))
    out.print(
        f"{key}: phiên bản {version.version} (bản nháp), mã kiểm tra {version.checksum[:12]}…",
        soft_wrap=True,
    )
    _say_draft(engine, p, key, version)


@content_app.command("versions")
@guard
def content_versions(plan: str, key: str) -> None:
    """Mọi phiên bản của một nội dung: ai sửa, ai duyệt, lúc nào, và mã kiểm tra."""
    check_arguments(plan=plan, key=key)
    from content.approval import find_content
    from content.models import APPROVED
    from content.speech import SYNTHESISED
    from content.versions import VERSION_STATE_NAMES, list_versions
    from dispatcher.queries import find_plan

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    versions = list_versions(engine, p.id, key)
    item = find_content(engine, p.id, nfc(key))
    table = Table(
        "phiên bản",
        "trạng thái",
        "tiêu đề",
        "âm thanh",
        "sửa bởi",
        "lúc sửa",
        "duyệt bởi",
        "lúc duyệt",
        "mã kiểm tra",
        title=f"{p.number} — {item.key} ({item.state})",
    )
    for v in versions:
        going_out = item.state == APPROVED and v.version == item.version
        table.add_row(
            str(v.version),
            VERSION_STATE_NAMES.get(v.state, v.state) + (" — đang gửi" if going_out else ""),
            v.title,
            (
                f"{v.media_sha256[:12]}… {v.media_duration_seconds:.1f} s"
                + (f" ({SYNTHESISED})" if v.media_voice else "")
                if v.media_sha256
                else ""
            ),
            v.edited_by,
            local_text(v.edited_at, p.zone),
            v.approved_by or "",
            local_text(v.approved_at, p.zone) if v.approved_at else "",
            v.checksum[:12] + "…",
        )
    out.print(table)


@content_app.command("approve")
@guard
def content_approve(
    plan: str,
    key: str,
    by: Annotated[str, typer.Option("--by", help="Who approves it.")],
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            min=1,
            help="The version approved, as `coso content versions` shows it; refused when"
            " it is not the newest draft. Default: the newest draft.",
        ),
    ] = None,
) -> None:
    """Approve a draft version of a content item so schedules send it instead of the version
    approved before (with its audio, when one of them is on a channel that plays audio)."""
    check_arguments(plan=plan, key=key, by=by)
    from content.approval import find_content
    from content.versions import approve
    from dispatcher.queries import find_plan
    from schedules.editing import check_approvable

    engine = open_database(current_settings())
    p = find_plan(engine, nfc(plan))
    check_approvable(engine, p.number, find_content(engine, p.id, nfc(key)))
    approved = approve(engine, p.id, key, version, by, datetime.now(UTC))
    out.print(
        f"{key}: approved by {by} — phiên bản {approved.version},"
        f" mã kiểm tra {approved.checksum[:12]}…",
        soft_wrap=True,
    )


def login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return ""


def _say_draft(engine: Any, plan: Any, key: str, version: Any) -> None:
    """What a new version means for what goes out, and how to approve it."""
    from content.approval import find_content
    from content.models import APPROVED

    item = find_content(engine, plan.id, nfc(key))
    if item.state == APPROVED:
        out.print(
            f"phiên bản {item.version} đã duyệt vẫn được gửi cho tới khi duyệt phiên bản"
            f" {version.version}: coso content approve {plan.number} {key} --version"
            f" {version.version} --by TÊN",
            soft_wrap=True,
        )


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
    """Add endpoints from a CSV (channel,address,name,unit; optionally latitude,longitude);
    all or nothing."""
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
    table = Table("id", "channel", "address", "name", "unit", "enabled", "test")
    for e in list_endpoints(engine, channel, unit, limit):
        table.add_row(
            str(e.id),
            e.channel,
            e.address,
            e.name,
            e.unit_code or "",
            "yes" if e.enabled else "no",
            "yes" if e.test else "",
        )
    out.print(table)


@endpoints_app.command("mark-test")
@guard
def endpoints_mark_test(
    channel: Annotated[str, typer.Argument(help="The endpoints' channel.")],
    addresses: Annotated[list[str], typer.Argument(help="Their addresses.")],
    off: Annotated[bool, typer.Option("--off", help="No longer test endpoints.")] = False,
) -> None:
    """Mark endpoints as test endpoints: the only ones a drill (coso emergency send
    --drill) reaches."""
    check_arguments(channel=channel, addresses=addresses)
    from channels.endpoints import mark_test

    engine = open_database(current_settings())
    changed = mark_test(engine, channel, addresses, not off)
    out.print(f"{changed} endpoint(s) {'no longer' if off else 'now'} test endpoints")


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
    by: Annotated[
        str | None, typer.Option("--by", help="Người sửa (mặc định: tên đăng nhập).")
    ] = None,
) -> None:
    """Prepare an audio file (one format, normalised loudness, jingles) as a content item's
    audio for loudspeakers, in a new version: approved content keeps playing its approved
    audio until that version is approved. A corrupt, truncated or unsupported file is
    refused."""
    check_arguments(plan=plan, key=key, by=by)
    from content.versions import attach_draft_audio
    from dispatcher.queries import find_plan

    settings = current_settings()
    engine = open_database(settings)
    p = find_plan(engine, nfc(plan))
    for path, name in ((file, "file"), (intro, "intro"), (outro, "outro")):
        if path is not None:
            not_a_folder(path, name)
    editor = by if by is not None else login_name()
    version = attach_draft_audio(
        engine, settings.media, p.id, key, file, editor, datetime.now(UTC), intro, outro
    )
    out.print(
        f"{key}: {version.media_duration_seconds:.1f} s at {version.media_loudness_lufs:.1f}"
        f" LUFS, sha256 {(version.media_sha256 or '')[:12]}…,"
        f" {version.media_size_bytes:,} bytes — phiên bản {version.version}",
        soft_wrap=True,
    )
    _say_draft(engine, p, key, version)


@content_app.command("speak")
@guard
def content_speak(
    plan: str,
    key: str,
    chime: Annotated[
        bool, typer.Option("--chime", help="Một hồi chuông ngắn trước khi đọc.")
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Người sửa (mặc định: tên đăng nhập).")
    ] = None,
) -> None:
    """Speak a content item's title and body offline (espeak-ng's Vietnamese voice, or the
    piper voice in config) as its audio for loudspeakers, in a new version prepared like
    uploaded audio: approved content keeps playing what was approved until that version is
    approved. Numbers, dates, times and abbreviations are read the Vietnamese way."""
    check_arguments(plan=plan, key=key, by=by)
    from content.speech import SYNTHESISED, speak_content
    from dispatcher.queries import find_plan

    settings = current_settings()
    engine = open_database(settings)
    p = find_plan(engine, nfc(plan))
    editor = by if by is not None else login_name()
    version = speak_content(engine, settings, p.id, key, editor, datetime.now(UTC), chime=chime)
    out.print(
        f"{key}: {SYNTHESISED} ({version.media_voice}), {version.media_duration_seconds:.1f} s"
        f" at {version.media_loudness_lufs:.1f} LUFS, sha256 {(version.media_sha256 or '')[:12]}…"
        f" — phiên bản {version.version}",
        soft_wrap=True,
    )
    _say_draft(engine, p, key, version)
