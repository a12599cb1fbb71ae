"""`coso emergency`: one warning on every channel — send, update, cancel, list, show."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coso.clock import local_text
from coso.commands import current_settings, guard, open_database, out
from coso.errors import InputError
from coso.labels import emergency_state_label
from coso.names import check_arguments

emergency_app = typer.Typer(
    no_args_is_help=True,
    help="Tin khẩn cấp: một lệnh, mọi kênh (send, update, cancel, list, show).",
)

TextOption = Annotated[str, typer.Option("--text", help="Nội dung cảnh báo.")]
UnitsOption = Annotated[
    str, typer.Option("--units", help="Mã đơn vị, cách nhau bằng dấu phẩy (06040,06046).")
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Tên đăng nhập của người phát lệnh (người dùng coso).")
]
RefArgument = Annotated[str, typer.Argument(help="Số hiệu tin khẩn cấp (KC-0001/2026).")]


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",")]


SKIP_WORDS = "--skip-opt-outs (gửi cả số đã từ chối nhận tin)"


def _actor(engine: Any, login: str | None, needs: str | None = None, what: str = "việc này") -> str:
    """The coso user named by --by (who must be allowed `needs`, asked for as `what`), else
    "cli"."""
    from coso.access import ROLE_ACTIONS, allowed_roles, refusal
    from coso.labels import role_label

    if login is None:
        if needs is not None:
            may = ", ".join(role_label(r) for r in allowed_roles(needs))
            raise InputError("--by", "", f"{what} cần --by: tên người dùng coso có vai trò {may}")
        return "cli"
    from coso.users import list_users

    wanted = login.strip().lower()
    for user in list_users(engine):
        if user.login == wanted and not user.disabled:
            if needs is not None and not any(needs in ROLE_ACTIONS.get(r, ()) for r in user.roles):
                raise InputError("--by", login, refusal(user.login, user.roles, needs, what))
            return user.login
    raise InputError("--by", login, "không có người dùng coso đang hoạt động với tên này")


@emergency_app.command("send")
@guard
def emergency_send(
    text: TextOption,
    units: UnitsOption,
    audio: Annotated[
        Path | None, typer.Option("--audio", help="Tệp âm thanh cho loa (wav, mp3…).")
    ] = None,
    channels: Annotated[
        str | None,
        typer.Option("--channels", help="Chỉ các kênh này (sms,web…); mặc định: mọi kênh."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Hết hiệu lực: sau một khoảng (6h) hoặc dd/mm/yyyy HH:MM."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Tiêu đề ngắn.")] = None,
    drill: Annotated[
        bool, typer.Option("--drill", help="Diễn tập: chỉ tới điểm nhận thử nghiệm.")
    ] = False,
    skip_opt_outs: Annotated[
        bool,
        typer.Option("--skip-opt-outs", help="Gửi cả số đã từ chối nhận tin (cần --by có quyền)."),
    ] = False,
    no_cancel_sms: Annotated[
        bool, typer.Option("--no-cancel-sms", help="Khi huỷ, không nhắn tin báo huỷ.")
    ] = False,
    by: ByOption = None,
) -> None:
    """Phát một tin khẩn cấp tới mọi kênh của các đơn vị đã chọn, ngay bây giờ."""
    check_arguments(units=units, channels=channels, until=until, by=by)
    from coso.access import SKIP_OPT_OUTS
    from dispatcher.emergency import EmergencyRequest, declare, parse_until

    settings = current_settings()
    engine = open_database(settings)
    now = datetime.now(UTC)
    actor = _actor(engine, by, SKIP_OPT_OUTS if skip_opt_outs else None, SKIP_WORDS)
    request = EmergencyRequest(
        text=text,
        units=_split(units) or [],
        channels=_split(channels),
        audio=audio,
        until=parse_until(until, now, settings.timer.default_zone),
        drill=drill,
        title=title,
        source="cli",
        skip_opt_outs=skip_opt_outs,
        cancel_sms=not no_cancel_sms,
    )
    ref = declare(engine, settings, request, now, actor)
    out.print(f"{'DIỄN TẬP · ' if drill else ''}đã phát tin khẩn cấp {ref}", highlight=False)
    _show(engine, settings, ref)


@emergency_app.command("update")
@guard
def emergency_update(
    ref: RefArgument,
    text: Annotated[str | None, typer.Option("--text", help="Nội dung mới.")] = None,
    units: Annotated[str | None, typer.Option("--units", help="Các đơn vị mới.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Thời điểm hết mới.")] = None,
    by: ByOption = None,
) -> None:
    """Sửa tin đang phát: nội dung hay đơn vị mới thì phát lại bản mới; chỉ đổi giờ hết thì
    dời hạn."""
    check_arguments(ref=ref, units=units, until=until, by=by)
    from dispatcher.emergency import parse_until, update

    settings = current_settings()
    engine = open_database(settings)
    now = datetime.now(UTC)
    update(
        engine,
        settings,
        ref,
        text=text,
        units=_split(units),
        until=parse_until(until, now, settings.timer.default_zone),
        now=now,
        actor=_actor(engine, by),
    )
    out.print(f"đã cập nhật {ref}", highlight=False)
    _show(engine, settings, ref)


@emergency_app.command("cancel")
@guard
def emergency_cancel(
    ref: RefArgument,
    note: Annotated[str | None, typer.Option("--note", help="Lý do huỷ.")] = None,
    by: ByOption = None,
) -> None:
    """Huỷ tin: loa dừng phát, bảng gỡ tin, bản tin bỏ ghim, nhắn tin báo huỷ nếu đã chọn."""
    check_arguments(ref=ref, note=note, by=by)
    from dispatcher.emergency import cancel

    settings = current_settings()
    engine = open_database(settings)
    cancel(engine, settings, ref, now=datetime.now(UTC), actor=_actor(engine, by), note=note)
    out.print(f"đã huỷ {ref}", highlight=False)
    _show(engine, settings, ref)


@emergency_app.command("list")
@guard
def emergency_list(
    limit: Annotated[int, typer.Option(min=1, help="Nhiều nhất bấy nhiêu tin.")] = 50,
) -> None:
    """Các tin khẩn cấp, mới nhất trước."""
    from dispatcher.emergency import list_emergencies
    from schedules.emergencies import shown_state

    settings = current_settings()
    engine = open_database(settings)
    now = datetime.now(UTC)
    tz = settings.timer.default_zone
    table = Table("số hiệu", "tiêu đề", "đơn vị", "trạng thái", "phát lúc", "hết lúc")
    for r in list_emergencies(engine, limit=limit):
        table.add_row(
            r.reference,
            ("DIỄN TẬP · " if r.drill else "") + r.title,
            ", ".join(r.units),
            emergency_state_label(shown_state(r.state, r.until, now)),
            local_text(r.declared_at, tz),
            local_text(r.until, tz) if r.until else "",
        )
    out.print(table)


@emergency_app.command("show")
@guard
def emergency_show(
    ref: RefArgument,
    follow: Annotated[
        bool, typer.Option("--follow", help="Cập nhật mỗi 2 giây cho tới Ctrl-C.")
    ] = False,
) -> None:
    """Tiến độ theo kênh và đơn vị (đã tới / đang chờ / lỗi) và nhật ký của tin."""
    check_arguments(ref=ref)
    settings = current_settings()
    engine = open_database(settings)
    if not follow:
        _show(engine, settings, ref, log=True)
        return
    try:
        while True:
            out.clear()
            _show(engine, settings, ref, log=True)
            time.sleep(2)
    except KeyboardInterrupt:
        return


def _show(engine: Any, settings: Any, ref: str, log: bool = False) -> None:
    from channels import registry
    from content.speech import SYNTHESISED
    from coso.labels import channel_label, event_label
    from dispatcher.emergency import current_audio, emergency_log, progress

    now = datetime.now(UTC)
    tz = settings.timer.default_zone
    found = progress(engine, ref, now)
    e = found.emergency
    titles = {name: p.title for name, p in registry.plugins().items()}
    out.print(
        f"{e.reference} · {'DIỄN TẬP · ' if e.drill else ''}{e.title} · "
        f"{emergency_state_label(found.state)} · hết lúc {local_text(e.until, tz)}",
        highlight=False,
    )
    audio = current_audio(engine, e)
    if audio is not None:
        played = (
            f"{SYNTHESISED} ({audio.media_voice})"
            if audio.media_voice
            else f"tệp {audio.media_source_name}"
        )
        out.print(f"loa phát: {played}, {audio.media_duration_seconds:.1f} giây", highlight=False)
    table = Table("kênh", "đơn vị", "đã tới", "đang chờ", "lỗi")
    for r in found.rows:
        table.add_row(
            channel_label(r.channel, titles),
            r.unit_name or "—",
            str(r.reached),
            str(r.pending),
            str(r.failed),
        )
    if found.notice is not None:
        n = found.notice
        table.add_row(
            channel_label(n.channel, titles) + " (báo huỷ)",
            "",
            str(n.reached),
            str(n.pending),
            str(n.failed),
        )
    out.print(table)
    if log:
        entries = Table("lúc", "kênh", "việc", "người làm", "chi tiết")
        for entry in emergency_log(engine, ref, 30):
            entries.add_row(
                local_text(entry.at, tz, seconds=True),
                channel_label(entry.channel, titles),
                event_label(entry.event),
                entry.actor,
                entry.detail or "",
            )
        out.print(entries)
