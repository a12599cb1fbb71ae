"""Plan files the tests write: a valid weekly plan, and ways to break it."""

from __future__ import annotations

from pathlib import Path

WEEKLY_PLAN = """\
[plan]
number = "95/KH-UBND"
title = "Tuyên truyền cải cách hành chính năm 2021"
issuer = "UBND tỉnh Lạng Sơn"
organisation = "Trung tâm Văn hóa tỉnh Lạng Sơn"
period_start = 2021-04-21
period_end = 2021-12-31
zone = "Asia/Ho_Chi_Minh"

[[targets]]
channel = "web"
count = 2
per = "week"
units = ["20"]

[[content]]
key = "cchc"
title = "Thủ tục mới — {{ unit.name }}"
body = \"\"\"
Kính gửi bà con {{ unit.name }}.

Bản tin lúc {{ local_time }}.
\"\"\"
state = "approved"

[[endpoints]]
channel = "web"
address = "bulletin:06040"
unit = "06040"

[[endpoints]]
channel = "web"
address = "bulletin:06046"
unit = "06046"

[[endpoints]]
channel = "web"
address = "bulletin:06112"
unit = "06112"

[[schedules]]
name = "CCHC Mon/Thu"
content = "cchc"
channel = "web"
targets = { units = ["20"] }
start = 2021-05-03T06:00:00
rrule = "FREQ=WEEKLY;BYDAY=MO,TH"
validity = "12h"
misfire_grace = "30m"
until = 2021-12-31
"""

# An SMS reminder to one person, who is written three ways: as the endpoint, as a group's
# member and as a schedule's target.
SMS_REMINDER_PLAN = """\
[plan]
number = "12/KH-UBND"
title = "Nhắc lịch nộp hồ sơ trực tuyến"
period_start = 2021-05-01
period_end = 2021-05-31

[[content]]
key = "nhac-lich"
kind = "text"
title = "Nhắc lịch"
body = "Kính gửi {{ recipient.name }}: hồ sơ hộ tịch nộp trực tuyến. UBND {{ unit.name }}."
state = "approved"

[[endpoints]]
channel = "sms"
address = "0912 345 678"
name = "Nguyễn Văn An"
unit = "06040"

[[groups]]
name = "to-dan-pho-1"
channel = "sms"
endpoints = ["0912345678"]

[[schedules]]
name = "Nhắc lịch sáng thứ hai"
content = "nhac-lich"
channel = "sms"
targets = { endpoints = ["+84 912 345 678"], groups = ["to-dan-pho-1"] }
start = 2021-05-03T07:00:00
"""


def write_plan(tmp_path: Path, text: str = WEEKLY_PLAN, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# A plan of commune 06112 alone (the SMS reminder is of commune 06040).
FOREST_PLAN = """\
[plan]
number = "7/KH-UBND"
title = "Phòng chống cháy rừng"
period_start = 2021-05-01
period_end = 2021-06-30

[[content]]
key = "chay-rung"
title = "Phòng cháy"
body = "Mùa khô: không đốt nương."
state = "approved"

[[endpoints]]
channel = "web"
address = "bulletin:06112-rung"
unit = "06112"

[[schedules]]
name = "Sáng thứ hai"
content = "chay-rung"
channel = "web"
targets = { endpoints = ["bulletin:06112-rung"] }
start = 2021-05-03T06:00:00
"""
