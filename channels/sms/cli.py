"""`coso sms`: recipients, opt-outs, preview, ad-hoc blasts and reconciling lost outcomes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coso.clock import SystemClock, local_text
from coso.commands import current_host, current_settings, err, guard, open_database, out
from coso.durations import parse_duration
from coso.errors import InputError
from coso.names import check_arguments, nfc


def sms_settings(settings: Any) -> Any:
    from channels.registry import settings_of

    return settings_of(settings, "sms")


sms_app = typer.Typer(no_args_is_help=True, help="SMS: recipients, opt-outs, blasts.")
optouts_app = typer.Typer(help="The opt-out list: numbers no non-emergency SMS reaches.")
sms_app.add_typer(optouts_app, name="optouts")

ToOption = Annotated[
    list[str],
    typer.Option(
        "--to",
        help="Recipients: group:NAME, unit:CODE or a phone number (repeatable).",
    ),
]
PlanOption = Annotated[str, typer.Option("--plan", help="The plan (number or id).")]
ContentOption = Annotated[str, typer.Option("--content", help="The content item's key.")]
PlainOption = Annotated[
    bool | None,
    typer.Option("--khong-dau/--co-dau", help="Without diacritics (GSM-7) or with (UCS-2)."),
]


def phone_number(text: str, field: str, hint: str = "") -> str:
    """A number typed on the command line, in E.164; InputError naming `field` if it isn't."""
    from channels.sms.phones import PhoneError, to_e164

    try:
        return to_e164(text)
    except PhoneError as exc:
        raise InputError(field, text, f"{hint}{exc}") from exc


def parse_targets(to: list[str]) -> dict[str, list[str]]:
    """['group:xa-vien', 'unit:06040', '0912345678'] → targets of a schedule."""
    targets: dict[str, list[str]] = {"groups": [], "units": [], "endpoints": []}
    for item in to:
        kind, sep, value = item.partition(":")
        if sep and kind == "group":
            targets["groups"].append(value)
        elif sep and kind == "unit":
            targets["units"].append(value)
        else:
            hint = "not group:NAME, unit:CODE or a number: "
            targets["endpoints"].append(phone_number(item, "--to", hint))
    if not any(targets.values()):
        raise InputError("--to", to, "name at least one group, unit or number")
    return {k: v for k, v in targets.items() if v}


@sms_app.command("import")
@guard
def sms_import(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX: name, phone, unit, groups.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; save nothing.")] = False,
) -> None:
    """Import recipients: numbers checked and stored as E.164 (old 11-digit mobile numbers
    converted), bad rows listed with their line and left out, repeats merged."""
    from channels.sms.recipients import read_recipients, save_recipients
    from coso.setup import existing_database

    settings = current_settings()
    # A dry run creates no database and applies no migration: it reads the one there is,
    # if any, else checks units against the current list.
    engine = existing_database(settings) if dry_run else open_database(settings)
    found = read_recipients(engine, file)
    for problem in found.invalid:
        err.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    summary = (
        f"{len(found.recipients)} recipient(s) read, {len(found.invalid)} row(s) refused, "
        f"{found.merged} repeat(s) merged, {found.converted} old number(s) converted"
    )
    if dry_run:
        checked = "" if engine else " (no database yet: units checked against the current list)"
        out.print(f"{summary}; nothing saved (--dry-run){checked}")
        return
    counts = save_recipients(engine, found.recipients, datetime.now(UTC))
    out.print(
        f"{summary}; {counts.added} new, {counts.updated} updated, {counts.groups} new group(s)"
    )


def _preview(plan: str, content: str, to: list[str], khong_dau: bool | None, emergency: bool):  # type: ignore[no-untyped-def]
    from channels.sms.preview import preview_blast

    check_arguments(plan=plan, content=content, to=to)
    settings = current_settings()
    host = current_host(settings)
    p = host.plan(nfc(plan))
    plain = sms_settings(settings).khong_dau if khong_dau is None else khong_dau
    preview = preview_blast(
        host,
        p,
        content,
        parse_targets(to),
        datetime.now(UTC),
        khong_dau=plain,
        emergency=emergency,
    )
    return settings, host, p, preview


def _print_preview(preview: Any, shown: int) -> None:
    table = Table("to", "name", "encoding", "chars", "segments", "text")
    for row in preview.rows[:shown]:
        table.add_row(
            row.phone,
            row.name,
            row.length.encoding,
            str(row.length.units),
            str(row.length.segments),
            row.text,
        )
    out.print(table)
    if preview.messages > shown:
        out.print(f"… and {preview.messages - shown} more")
    encodings = ", ".join(f"{n} {enc}" for enc, n in sorted(preview.encodings().items()))
    out.print(
        f"{preview.messages} message(s) ({encodings}), {preview.segments} segment(s) in all"
        + (f"; {len(preview.opted_out)} opted-out number(s) left out" if preview.opted_out else "")
    )


@sms_app.command("preview")
@guard
def sms_preview(
    plan: PlanOption,
    content: ContentOption,
    to: ToOption,
    khong_dau: PlainOption = None,
    emergency: Annotated[bool, typer.Option("--emergency")] = False,
    show: Annotated[int, typer.Option("--show", help="Messages to show.")] = 10,
) -> None:
    """Show each recipient's text, its encoding and segments, and the blast's total, before
    sending. A template that does not render for a recipient is an error."""
    *_, preview = _preview(plan, content, to, khong_dau, emergency)
    _print_preview(preview, show)


@sms_app.command("send")
@guard
def sms_send(
    plan: PlanOption,
    content: ContentOption,
    to: ToOption,
    khong_dau: PlainOption = None,
    emergency: Annotated[
        bool, typer.Option("--emergency", help="Ignores quiet hours, the cap and opt-outs.")
    ] = False,
    validity: Annotated[
        str, typer.Option("--validity", help="Not sent after this long (e.g. 6h).")
    ] = "12h",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before sending.")] = False,
) -> None:
    """Send an ad-hoc blast now, recorded against the plan, with a progress bar."""
    from channels.sms.channel import SmsChannel

    settings, host, p, preview = _preview(plan, content, to, khong_dau, emergency)
    sms = sms_settings(settings)
    if not sms.account_sid:
        raise InputError("channels.sms.account_sid", "", "SMS is not configured")
    _print_preview(preview, 3)
    if not yes and not typer.confirm(f"Send {preview.messages} SMS now?"):
        raise typer.Exit(1)
    clock = SystemClock()
    plain = sms.khong_dau if khong_dau is None else khong_dau
    schedule = host.add_blast(
        p,
        content,
        "sms",
        parse_targets(to),
        clock.now(),
        priority="emergency" if emergency else "normal",
        validity=parse_duration(validity),
        # Its preview left opted-out numbers in: so does the send.
        options={"khong_dau": plain, **({"opt_outs": "skip"} if emergency else {})},
    )
    channel = SmsChannel(sms, settings.server.public_url, clock.now)
    dispatcher = host.dispatcher({"sms": channel})
    dispatcher.start()
    dispatcher.fire()

    def quiet() -> datetime | None:
        if emergency:
            return None
        from channels.sms.rules import quiet_until

        return quiet_until(clock.now(), p.zone, sms.quiet_start, sms.quiet_end)

    try:
        _follow(host, schedule.id or 0, preview.messages, quiet, p.zone)
    finally:
        dispatcher.stop()
    out.print(f"blast recorded in plan {p.number} as schedule {schedule.id}")


def _follow(
    host: Any,
    schedule_id: int,
    total: int,
    quiet: Callable[[], datetime | None],
    tz: str,
) -> None:
    """A progress bar until nothing of the blast waits to be sent now (or quiet hours
    begin: the rest waits for them to end)."""
    columns = (
        TextColumn("[bold]SMS"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]:.1f} sent/s"),
        TextColumn("delivered {task.fields[delivered]}"),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("remaining {task.fields[remaining]}"),
        TimeElapsedColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=out) as progress:
        task = progress.add_task(
            "sms", total=total, rate=0.0, delivered=0, failed=0, remaining=total
        )
        quiet_rounds = 0
        while True:
            counts = host.schedule_counts(schedule_id)
            waiting = counts.get("pending", 0) + counts.get("sending", 0)
            retrying = counts.get("retry_wait", 0)
            out_now = sum(counts.values()) - waiting - retrying
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                completed=out_now,
                rate=out_now / elapsed,
                delivered=counts.get("delivered", 0),
                failed=counts.get("failed", 0),
                remaining=waiting + retrying,
            )
            resume = quiet()
            if resume is not None and sum(counts.values()) >= total:
                progress.stop()
                out.print(f"quiet hours: the rest waits until {local_text(resume, tz)}")
                break
            if sum(counts.values()) >= total and waiting == 0:
                quiet_rounds += 1
                if retrying == 0 or quiet_rounds > 20:
                    break
            time.sleep(0.25)
    counts = host.schedule_counts(schedule_id)
    out.print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if counts.get("retry_wait") or counts.get("pending"):
        out.print(
            "some messages wait (quiet hours, the daily cap or a gateway asking to slow "
            "down): a running `coso serve` sends them when they fall due"
        )


@sms_app.command("reconcile")
@guard
def sms_reconcile() -> None:
    """Settle messages whose outcome was lost in a crash (`unknown`) from the gateway's list."""
    from channels.sms.channel import SmsChannel
    from channels.sms.reconcile import reconcile, unknown_deliveries

    settings = current_settings()
    sms = sms_settings(settings)
    if not sms.account_sid:
        raise InputError("channels.sms.account_sid", "", "SMS is not configured")
    host = current_host(settings)
    clock = host.clock
    channel = SmsChannel(sms, settings.server.public_url, clock.now)
    total = len(unknown_deliveries(host))
    with Progress(console=out) as progress:
        task = progress.add_task("looking up", total=total)
        report = reconcile(host, channel, clock.now(), lambda n: progress.advance(task, n))
    found = ", ".join(f"{n} {state}" for state, n in sorted(report.found.items())) or "none"
    out.print(
        f"{report.looked_up} unknown message(s) looked up: found at the gateway: {found}; "
        f"not there (sent now by the dispatcher): {report.resent}"
    )
    for problem in report.errors:
        err.print(f"[yellow]left unknown[/] {problem}", highlight=False)
    if report.errors:
        raise typer.Exit(1)


@optouts_app.command("list")
@guard
def optouts_list() -> None:
    """Numbers that opted out, when and how."""
    from channels.sms.recipients import list_opt_outs

    settings = current_settings()
    engine = open_database(settings)
    table = Table("phone", "since", "how", "detail")
    for o in list_opt_outs(engine):
        table.add_row(o.phone, local_text(o.at, settings.timer.default_zone), o.source, o.detail)
    out.print(table)


@optouts_app.command("add")
@guard
def optouts_add(
    phone: str, note: Annotated[str, typer.Option("--note", help="Why, who asked.")] = ""
) -> None:
    """Opt a number out by hand."""
    check_arguments(phone=phone)
    from channels.sms.recipients import add_opt_out

    number = phone_number(phone, "phone")
    engine = open_database(current_settings())
    added = add_opt_out(engine, number, datetime.now(UTC), "manual", note)
    out.print(f"{number}: opted out" if added else f"{number}: had already opted out")


@optouts_app.command("remove")
@guard
def optouts_remove(phone: str) -> None:
    """Take a number off the opt-out list (it asked to receive messages again)."""
    check_arguments(phone=phone)
    from channels.sms.recipients import remove_opt_out

    number = phone_number(phone, "phone")
    engine = open_database(current_settings())
    if not remove_opt_out(engine, number):
        raise InputError("phone", number, "is not on the opt-out list")
    out.print(f"{number}: may receive SMS again")
