"""`coso station`: a commune's station tasks of a day, and an operator's word on one
(played, could not play, a note), as the console records them."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any

import typer
from rich.table import Table

from coso.clock import as_utc, zone
from coso.commands import current_host, current_settings, guard, out, parse_day
from coso.errors import InputError
from coso.names import check_arguments

station_app = typer.Typer(
    no_args_is_help=True,
    help="Đài truyền thanh FM/hữu tuyến: việc trong ngày, xác nhận đã phát hoặc không phát được.",
)
ByOption = Annotated[
    str, typer.Option("--by", help="Tên đăng nhập của người trực ghi nhận (người dùng coso).")
]
STATUS_WORDS = {"upcoming": "sắp tới", "due": "đến giờ", "late": "quá giờ", "done": "xong"}


def _host() -> Any:
    return current_host(current_settings())


def _user(host: Any, login: str) -> str:
    """`--by`: an enabled coso user, by login."""
    from coso.users import list_users

    wanted = login.strip().lower()
    for user in list_users(host.engine):
        if user.login == wanted:
            if user.disabled:
                raise InputError("--by", login, "người dùng này đã bị khóa")
            return user.login
    raise InputError("--by", login, "không có người dùng coso với tên đăng nhập này")


def parse_at(value: str, tz: str, now: datetime) -> datetime:
    """`--at`: "HH:MM" (today) or "dd/mm/yyyy HH:MM", in `tz`."""
    text = " ".join(value.split())
    found = re.fullmatch(r"(?:(\d{1,2}/\d{1,2}/\d{4}) )?(\d{1,2}):(\d{2})", text)
    if found is None:
        raise InputError("--at", value, "không phải giờ như 05:32 hoặc 03/05/2021 05:32")
    day_text, hours, minutes = found.groups()
    if int(hours) > 23 or int(minutes) > 59:
        raise InputError("--at", value, "giờ phải từ 00:00 đến 23:59")
    if day_text:
        start = parse_day(day_text, tz, "--at")
        assert start is not None
        day = start.astimezone(zone(tz)).date()
    else:
        day = as_utc(now).astimezone(zone(tz)).date()
    local = datetime.combine(day, time(int(hours), int(minutes)), tzinfo=zone(tz))
    return as_utc(local)


@station_app.command("tasks")
@guard
def station_tasks_command(
    unit: Annotated[str, typer.Argument(help="Mã đơn vị hành chính (xã), ví dụ 06040.")],
    day: Annotated[
        str | None, typer.Option("--day", help="Ngày dd/mm/yyyy (mặc định: hôm nay).")
    ] = None,
    text: Annotated[bool, typer.Option("--text", help="In cả nội dung cần đọc.")] = False,
) -> None:
    """The station tasks of a commune for a day: time, code, state, item, length."""
    from channels.station.tasks import operators_zone, station_tasks

    check_arguments(unit=unit, day=day)
    host = _host()
    tz = operators_zone(host)
    start = parse_day(day, tz, "--day")
    local_day = start.astimezone(zone(tz)).date() if start else None
    tasks = station_tasks(host, unit.strip(), local_day)
    table = Table(
        "giờ", "mã SMS", "tình trạng", "trạng thái", "lần gửi", "kế hoạch", "nội dung",
        "thời lượng", "hết hạn",
    )  # fmt: skip
    for t in tasks:
        local = as_utc(t.scheduled_for).astimezone(zone(tz))
        until = as_utc(t.expires_at).astimezone(zone(tz)) if t.expires_at else None
        table.add_row(
            f"{local:%H:%M}",
            t.code or "",
            STATUS_WORDS.get(t.status, t.status),
            t.state + (f" ({t.error})" if t.error else ""),
            str(t.delivery_id or ""),
            t.plan_number,
            t.title,
            f"{round(t.audio.duration_seconds)} giây" if t.audio else "",
            f"{until:%H:%M}" if until else "",
        )
    out.print(table)
    if not tasks:
        out.print("Không có việc nào của đài truyền thanh trong ngày này.")
    if text:
        for t in tasks:
            local = as_utc(t.scheduled_for).astimezone(zone(tz))
            out.print(f"\n[bold]{local:%H:%M} {t.title}[/]", highlight=False)
            out.print(t.text, markup=False, highlight=False)


@station_app.command("confirm")
@guard
def station_confirm(
    delivery_id: Annotated[int, typer.Argument(help="Số lần gửi (cột 'lần gửi').")],
    by: ByOption,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Giờ đã phát thật: 05:32 hoặc 03/05/2021 05:32 (mặc định: bây giờ)."
        ),
    ] = None,
) -> None:
    """ "Đã phát": the station delivery becomes `confirmed` by the operator."""
    from channels.station.confirmations import confirm
    from channels.station.tasks import operators_zone

    check_arguments(by=by, at=at)
    host = _host()
    tz = operators_zone(host)
    played = parse_at(at, tz, host.clock.now()) if at else None
    done = confirm(host, delivery_id, _user(host, by), played, via="dòng lệnh")
    local = as_utc(done.at).astimezone(zone(tz))
    out.print(f"Lần gửi {done.delivery_id}: đã phát lúc {local:%H:%M %d/%m/%Y}.")


@station_app.command("fail")
@guard
def station_fail(
    delivery_id: Annotated[int, typer.Argument(help="Số lần gửi (cột 'lần gửi').")],
    by: ByOption,
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="mat_dien, hong_thiet_bi, thoi_tiet, khong_nguoi_truc, trung_lich hoặc khac.",
        ),
    ],
    note: Annotated[str, typer.Option("--note", help="Ghi chú (bắt buộc với 'khac').")] = "",
) -> None:
    """ "Không phát được": the station delivery becomes `failed`, with the reason."""
    from channels.station.confirmations import REASONS, could_not_play, reason_code

    check_arguments(by=by, reason=reason, note=note)
    host = _host()
    done = could_not_play(host, delivery_id, _user(host, by), reason, note, via="dòng lệnh")
    out.print(f"Lần gửi {done.delivery_id}: không phát được ({REASONS[reason_code(reason)]}).")


@station_app.command("note")
@guard
def station_note(
    delivery_id: Annotated[int, typer.Argument(help="Số lần gửi, của bất kỳ kênh nào.")],
    by: ByOption,
    text: Annotated[str, typer.Argument(help="Nội dung ghi chú.")],
) -> None:
    """A note on any delivery, in the activity log; its state stays as it is."""
    from channels.station.confirmations import add_note

    check_arguments(by=by)
    host = _host()
    done = add_note(host, delivery_id, _user(host, by), text)
    out.print(f"Đã ghi chú vào lần gửi {done.delivery_id}.")
