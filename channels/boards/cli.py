"""`coso boards`: a screen's token, approving a pairing code, the boards and their status,
and ending an emergency on the boards before its validity ends."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from coso.commands import current_host, current_settings, guard, out
from coso.errors import InputError

boards_app = typer.Typer(
    no_args_is_help=True,
    help="Bảng tin điện tử công cộng: ghép nối màn hình, trạng thái, kết thúc tin khẩn cấp.",
)
ByOption = Annotated[
    str, typer.Option("--by", help="Tên đăng nhập của người làm (người dùng coso).")
]


def _host() -> Any:
    return current_host(current_settings())


def _cfg(host: Any) -> Any:
    from channels.registry import settings_of

    return settings_of(host.settings, "boards")


def _user(host: Any, login: str) -> str:
    from coso.users import list_users

    wanted = login.strip().lower()
    for user in list_users(host.engine):
        if user.login == wanted and not user.disabled:
            return user.login
    raise InputError("--by", login, "không có người dùng coso đang hoạt động với tên này")


@boards_app.command("token")
@guard
def token_command(address: Annotated[str, typer.Argument(help="screen:<tên bảng>")]) -> None:
    """A new token for a screen (its earlier one stops working): the address to open on it."""
    from channels.boards.pairing import issue_token

    host = _host()
    token = issue_token(host.engine, address, host.clock.now())
    name = address.removeprefix("screen:")
    base = str(host.settings.server.public_url).rstrip("/")
    out.print(f"{base}/boards/{name}?token={token}", soft_wrap=True, highlight=False)


@boards_app.command("pair")
@guard
def pair_command(
    address: Annotated[str, typer.Argument(help="screen:<tên bảng>")],
    code: Annotated[str, typer.Argument(help="Mã 6 chữ số đang hiện trên màn hình.")],
    by: ByOption,
) -> None:
    """Approve the pairing code a new screen shows."""
    from channels.boards.pairing import approve
    from coso.durations import parse_duration

    host = _host()
    who = _user(host, by)
    valid = parse_duration(_cfg(host).pairing_valid)
    approve(host.engine, address, code, who, host.clock.now(), valid)
    out.print(f"đã ghép nối {address}: màn hình nhận chương trình trong vài giây")


@boards_app.command("list")
@guard
def list_command() -> None:
    """Every board: online or not, last seen, what it shows (a controller: and its
    brightness), its last failure."""
    from channels.boards.devices import boards, showing_text
    from coso.clock import local_text

    host = _host()
    tz = host.settings.timer.default_zone
    table = Table("bảng", "đơn vị", "trạng thái", "lần cuối", "đang hiện", "lỗi gần nhất")
    for r in boards(host.engine):
        kind = r.address.split(":", 1)[0]
        if r.online:
            status = "trực tuyến"
        elif r.last_seen:
            status = "mất kết nối"
        elif kind == "screen" and not r.token_hash:
            status = "chưa ghép nối"
        else:
            status = "chưa thấy"
        failure = ""
        if r.last_failure:
            failure = f"{local_text(r.last_failure_at, tz)}: {r.last_failure}"
        table.add_row(
            r.address,
            r.unit_code or "",
            status,
            local_text(r.last_seen, tz) if r.last_seen else "",
            showing_text(r) or "",
            failure,
        )
    out.print(table)


@boards_app.command("end")
@guard
def end_command(
    schedule: Annotated[int, typer.Argument(help="Mã lịch (schedule id) của tin cần kết thúc.")],
    by: ByOption,
) -> None:
    """End a schedule's items on every board now (an emergency that is over): boards go
    back to their programme."""
    from channels.boards.programme import end_items

    host = _host()
    who = _user(host, by)
    ended = end_items(host, schedule, who, host.clock.now())
    if not ended:
        raise InputError("schedule", schedule, "lịch này không có tin nào đang hiện trên bảng")
    out.print(f"đã kết thúc {ended} tin trên bảng; các bảng trở lại chương trình thường")


def add_commands(app: typer.Typer) -> None:
    app.add_typer(boards_app, name="boards")
