"""Each operator's list of the day by SMS, for an operator whose phone has no data: the
day's open items of their communes with the code to confirm each (`XN 4821`), sent once
per operator per day from channels.station.digest_at (the operators' zone). The text goes
through whichever channel can text one person (`ChannelPlugin.text_sender`: SMS). A row
per operator and day is written before the text goes out, so a restart does not text
twice; a text the gateway refused frees its row, and is tried again later."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlmodel import Field, SQLModel

from channels.endpoints import Endpoint
from channels.host import ChannelHost
from channels.registry import settings_of
from channels.station.channel import CHANNEL, open_until
from channels.station.codes import TaskSlot, codes_for
from channels.station.tasks import (
    StationTask,
    open_tasks,
    operators_zone,
    slots_of_day,
    station_tasks,
)
from content.sms_text import khong_dau
from coso.clock import as_utc, zone
from coso.db import insert_ignoring_duplicates, write
from coso.durations import parse_duration
from coso.errors import InputError
from coso.units import unit_tree
from coso.users import OPERATOR, list_users

log = logging.getLogger(__name__)
MAX_TEXT = 1500  # characters: ten segments without diacritics, well inside a gateway's 1600
RETRY_AFTER = timedelta(minutes=5)  # after a text the gateway did not take
HOW_TO_ANSWER = "Đã phát: nhắn XN <mã>. Không phát được: nhắn KP <mã> <lý do>."


class StationDigest(SQLModel, table=True):
    """The list of `day` (the operators' zone) texted to an operator: at most once."""

    __tablename__ = "station_digest"

    login: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    phone: str
    items: int
    at: datetime
    provider_id: str | None = None


T = StationDigest.__table__


@dataclass(frozen=True)
class Operator:
    login: str
    phone: str
    units: tuple[str, ...]  # the units with stations their roles reach


def digest_due(host: ChannelHost, now: datetime) -> date | None:
    """The local day whose lists are due at `now`, or None (before digest_at, or off)."""
    cfg = settings_of(host.settings, CHANNEL)
    if not cfg.digest_at:
        return None
    local = as_utc(now).astimezone(zone(operators_zone(host)))
    hours, minutes = (int(x) for x in cfg.digest_at.split(":"))
    if (local.hour, local.minute) < (hours, minutes):
        return None
    return local.date()


def station_operators(host: ChannelHost) -> list[Operator]:
    """Enabled operators with a phone, and the units with stations that their roles reach."""
    E = Endpoint.__table__
    with host.engine.connect() as conn:
        units = set(
            conn.scalars(
                select(E.c.unit_code).where(
                    E.c.channel == CHANNEL, E.c.enabled.is_(True), E.c.unit_code.is_not(None)
                )
            )
        )
    if not units:
        return []
    tree = unit_tree(host.engine)
    found = []
    for user in list_users(host.engine):
        if user.disabled or OPERATOR not in user.roles or not user.phone:
            continue
        reach: set[str] = set()
        for code in user.unit_codes:
            try:
                reach |= tree.below(code)
            except InputError:  # a unit since withdrawn from the list: it reaches nothing
                continue
        mine = tuple(sorted(units & reach))
        if mine:
            found.append(Operator(user.login, user.phone, mine))
    return found


def send_digests(
    host: ChannelHost,
    now: datetime,
    send: Callable[[str, str], str] | None,
    skip: frozenset[str] = frozenset(),
    beat: Callable[[], None] = lambda: None,
) -> dict[str, str]:
    """Text each operator who has not had it the list of the day (when it is due), but
    those in `skip`; returns login → what happened ("sent", "nothing today", or "not sent:
    <why>"). `beat` is called before each operator's."""
    day = digest_due(host, now)
    if day is None or send is None:
        return {}
    cfg = settings_of(host.settings, CHANNEL)
    with host.engine.connect() as conn:
        done = set(conn.scalars(select(T.c.login).where(T.c.day == day)))
    waiting = [o for o in station_operators(host) if o.login not in done | skip]
    if not waiting:
        return {}
    tz = operators_zone(host)
    late = parse_duration(cfg.late_confirmation)
    coming = slots_of_day(host, day, now=now, tz=tz)
    by_unit: dict[str, list[StationTask]] = {}
    results: dict[str, str] = {}
    for operator in waiting:
        beat()  # a long morning of texts is progress, not a stuck upkeep
        tasks: list[StationTask] = []
        for unit in operator.units:
            if unit not in by_unit:
                by_unit[unit] = open_tasks(
                    station_tasks(host, unit, day, now=now, tz=tz, coming=coming)
                )
            tasks += by_unit[unit]
        tasks.sort(key=lambda t: t.turn)
        if not _claim(host, operator, day, len(tasks), now):
            continue  # another process has it
        if not tasks:
            results[operator.login] = "nothing today"
            continue
        slots = [
            TaskSlot(
                t.endpoint_id,
                t.schedule_id,
                t.scheduled_for,
                t.unit_code,
                open_until(t.scheduled_for, t.expires_at, late),
            )
            for t in tasks
        ]
        codes = codes_for(host.engine, slots, now)
        text = digest_text(tasks, [codes[s.key] for s in slots], day, tz, plain=cfg.khong_dau)
        try:
            provider_id = send(operator.phone, text)
        except Exception as exc:
            _unclaim(host, operator, day)
            log.warning(
                "station list of %s for %s (%s) not sent: %s",
                f"{day:%d/%m/%Y}",
                operator.login,
                operator.phone,
                exc,
            )
            results[operator.login] = f"not sent: {exc}"
            continue
        with write(host.engine) as conn:
            conn.execute(
                update(T)
                .where(T.c.login == operator.login, T.c.day == day)
                .values(provider_id=provider_id)
            )
        log.info("station list of %s texted to %s (%d items)", day, operator.login, len(tasks))
        results[operator.login] = "sent"
    return results


def digest_text(
    tasks: Sequence[StationTask], codes: Sequence[str], day: date, tz: str, *, plain: bool
) -> str:
    """The list as one text: a line per item (time, title, length, station when the
    operator has several, code), then how to answer. Cut, saying how many more, to fit."""
    several = len({t.endpoint_id for t in tasks}) > 1
    head = f"Lịch đài truyền thanh {day:%d/%m/%Y}:"
    lines = []
    for task, code in zip(tasks, codes, strict=True):
        local = as_utc(task.scheduled_for).astimezone(zone(tz))
        title = task.title if len(task.title) <= 60 else task.title[:59] + "…"
        length = f" ({_minutes(task.audio.duration_seconds)})" if task.audio else ""
        where = f" - {task.station}" if several else ""
        lines.append(f"{local:%H:%M} {title}{length}{where} [{code}]")
    kept: list[str] = []
    for n, line in enumerate(lines):
        more = len(lines) - n - 1
        tail = _more(more) if more else ""
        if len("\n".join([head, *kept, line, tail, HOW_TO_ANSWER])) > MAX_TEXT:
            kept.append(_more(len(lines) - n))
            break
        kept.append(line)
    text = "\n".join([head, *kept, HOW_TO_ANSWER])
    return khong_dau(text) if plain else text


def _more(count: int) -> str:
    return f"... và {count} mục nữa: xem trên coso"


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}'{whole % 60:02d}\""


def _claim(host: ChannelHost, operator: Operator, day: date, items: int, now: datetime) -> bool:
    row = {"login": operator.login, "day": day, "phone": operator.phone, "items": items, "at": now}
    with write(host.engine) as conn:
        added = conn.execute(insert_ignoring_duplicates(conn, T).returning(T.c.login), row).first()
    return added is not None


def _unclaim(host: ChannelHost, operator: Operator, day: date) -> None:
    with write(host.engine) as conn:
        conn.execute(delete(T).where(T.c.login == operator.login, T.c.day == day))


def texted(host: ChannelHost, day: date) -> list[tuple[str, str, int, str | None]]:
    """(login, phone, items, provider id) of the lists of `day` (for `coso station`)."""
    with host.engine.connect() as conn:
        return [
            (r.login, r.phone, r.items, r.provider_id)
            for r in conn.execute(select(T).where(T.c.day == day).order_by(T.c.login))
        ]
