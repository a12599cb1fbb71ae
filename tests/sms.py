"""What the SMS tests share: a plan with SMS content, recipient files, settings pointing the
real twilio client at the local gateway (tests/twilio_server.py)."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from channels.registry import settings_of
from channels.sms.channel import SmsChannel
from channels.sms.recipients import read_recipients, save_recipients
from coso.clock import Clock, SystemClock
from coso.config import Settings
from dispatcher.models import ActivityEntry, Delivery
from dispatcher.queries import find_plan
from dispatcher.service import Dispatcher
from schedules.importer import import_plan_file
from schedules.models import Plan
from tests.plans import write_plan
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN

SMS_PLAN = """\
[plan]
number = "12/KH-UBND"
title = "Nhắc lịch thủ tục hành chính mới"
issuer = "UBND huyện Văn Quan"
period_start = 2021-01-01
period_end = 2030-12-31
zone = "Asia/Ho_Chi_Minh"

[[content]]
key = "nhac-lich"
title = "Nhắc lịch"
body = "Kính gửi {{ recipient.name }}: từ 01/6 nộp hồ sơ trực tuyến tại dichvucong.gov.vn."
kind = "text"
state = "approved"
approved_by = "Phòng Văn hóa - Thông tin"

[[content]]
key = "biet-danh"
kind = "text"
title = "Sai mẫu"
body = "Chào {{ recipient.biet_danh }}, mời họp tổ dân phố."
state = "approved"
approved_by = "Phòng Văn hóa - Thông tin"

[[content]]
key = "bao"
title = "Cảnh báo bão"
body = "KHẨN: bão số 3 đổ bộ đêm nay. Không ra khơi, gia cố nhà cửa."
kind = "text"
state = "approved"
approved_by = "Phòng Văn hóa - Thông tin"
"""


def sms_settings(settings: Settings, gateway_url: str, **sms: Any) -> Settings:
    settings.channels["sms"] = {
        **settings.channels.get("sms", {}),
        **{
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "base_url": gateway_url,
            "sender": "UBND VQuan",
            "rate_per_second": 1000,
            "concurrency": 8,
            "timeout": 5.0,
            "quiet_start": "00:00",  # equal: no quiet hours (the tests that want them say)
            "quiet_end": "00:00",
            **sms,
        },
    }
    settings.dispatcher.retry.first_delay = "1s"
    return settings


def import_sms_plan(engine: Engine, settings: Settings, tmp_path: Path) -> Plan:
    path = write_plan(tmp_path, SMS_PLAN, name=f"sms-{uuid.uuid4().hex[:6]}.toml")
    import_plan_file(engine, settings, path, SystemClock().now())
    return find_plan(engine, "12/KH-UBND")


def phone(n: int) -> str:
    """A distinct valid Viettel number for each n < 10,000,000 (national form)."""
    return f"098{n:07d}"


def e164(n: int) -> str:
    return "+84" + phone(n)[1:]


def write_recipients(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["name", "phone", "unit", "groups"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def import_recipients(engine: Engine, path: Path) -> Any:
    found = read_recipients(engine, path)
    save_recipients(engine, found.recipients, SystemClock().now())
    return found


def states(engine: Engine, schedule_id: int | None = None) -> dict[str, int]:
    D = Delivery.__table__
    query = select(D.c.state, func.count()).group_by(D.c.state)
    if schedule_id is not None:
        query = query.where(D.c.schedule_id == schedule_id)
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


def log_events(engine: Engine, **where: Any) -> list[Any]:
    A = ActivityEntry.__table__
    query = select(A).order_by(A.c.id)
    for key, value in where.items():
        query = query.where(A.c[key] == value)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def add_recipients(engine: Engine, tmp_path: Path, count: int, group: str = "g") -> Any:
    """`count` recipients named "CD <n>" with phone(n), in `group`."""
    rows = [
        {"name": f"CD {n}", "phone": phone(n), "unit": "", "groups": group} for n in range(count)
    ]
    return import_recipients(
        engine, write_recipients(tmp_path / f"ds-{uuid.uuid4().hex[:6]}.csv", rows)
    )


def sms_dispatcher(
    engine: Engine, settings: Settings, gateway_url: str, clock: Clock, **sms: Any
) -> Dispatcher:
    """A dispatcher with only the SMS channel, on `clock`, without status callbacks."""
    sms_settings(settings, gateway_url, status_callbacks=False, **sms)
    channel = SmsChannel(settings_of(settings, "sms"), "http://coso.test", clock.now)
    return Dispatcher(engine, settings, clock, channels={"sms": channel})
