"""A commune operator's day in a real browser, against one `coso serve` for the module: a
broadcast to two communes' IP loudspeakers (simulated players) and one commune's station,
confirmed with one tap on a phone; an item nobody confirms, `unconfirmed` once its validity
ends; and a confirmation by SMS reply through the signed inbound webhook, where a forged or
mistyped reply changes nothing. Each test has communes and accounts of its own."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from channels.loudspeaker.player.runtime import PlayerGroup
from coso.config import load_settings
from tests.browser.console import (
    add_user,
    count_row,
    import_near_slot,
    log_rows,
    module_server,
    reload_until,
    signed_in,
    station_task,
)
from tests.browser.pages import assert_fits_phone, assert_nothing_from_outside, screenshot
from tests.browser.server import CosoServer
from tests.loudspeakers import clip, players
from tests.plans import write_plan
from tests.sms import e164
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer, post_callback

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
LOUDSPEAKER = "Loa truyền thanh thông minh"
STATION = "Đài truyền thanh FM/hữu tuyến"
CONFIRMED, UNCONFIRMED, SENT, PLAYED = "đã xác nhận phát", "chưa xác nhận", "đã gửi", "đã phát"

# Each test's communes and the operator who answers for them.
THAT_KHE, TRANG_DINH = "06040", "06046"  # the broadcast: loudspeakers in both, a station here
HOANG_VAN_THU = "06172"  # an item nobody confirms
TAN_TIEN = "06019"  # confirmed by SMS
QUOC_VIET = "06058"  # two priority items in one slot, ordered by its operator
OPERATOR = "vanhanh-thatkhe"
SILENT = "vanhanh-hoangvanthu"
TEXTER = "vanhanh-tantien"
ORDERER = "vanhanh-quocviet"
TEXTER_PHONE = e164(4021)
VIEWER = "xem-langson"  # the province: every commune's part of every plan


@pytest.fixture(scope="module")
def gateway() -> Iterator[TwilioServer]:
    """The SMS gateway coso talks to (operators' replies come through its webhook)."""
    with TwilioServer() as server:
        yield server


@pytest.fixture(scope="module")
def coso(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, gateway: TwilioServer
) -> Iterator[CosoServer]:
    settings = {
        "timer": {"reconcile_every": "1s"},
        "media": {"token_secret": uuid.uuid4().hex},  # players are given their tokens
        "channels": {
            # Unconfirmed items are found within a second of their validity's end; no list
            # of the day by SMS (the tests read codes from the page).
            "station": {"upkeep_every": "1s", "digest_at": ""},
            "sms": {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "base_url": gateway.url,
                "sender": "UBND Tinh",
                "status_callbacks": False,
                "quiet_start": "00:00",
                "quiet_end": "00:00",
            },
        },
    }
    with module_server(tmp_path_factory, sqlite_template, settings, start=False) as server:
        add_user(server, OPERATOR, "Hoàng Thị Mai", "operator", [THAT_KHE])
        add_user(server, SILENT, "Nông Văn Dũng", "operator", [HOANG_VAN_THU])
        add_user(server, TEXTER, "Lường Văn Páo", "operator", [TAN_TIEN], phone=TEXTER_PHONE)
        add_user(server, ORDERER, "Vi Thị Hằng", "operator", [QUOC_VIET])
        add_user(server, VIEWER, "Sở Văn hóa Lạng Sơn", "viewer", ["20"])
        yield server.start()


@pytest.fixture(scope="module")
def speakers(coso: CosoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlayerGroup]:
    """The two communes' IP loudspeakers: simulated players on coso's broker, provisioned
    with their tokens and keys as `coso players credentials` gives them."""
    tag = coso.settings["channels"]["loudspeaker"]["client_id"][-4:]  # this run's own ids
    group = players(
        load_settings(coso.config),
        [f"loa-thatkhe-{tag}", f"loa-trangdinh-{tag}"],
        tmp_path_factory.mktemp("players"),
    ).start()
    yield group
    group.stop()


def local(at: datetime) -> str:
    return f"{at.astimezone(ZONE):%Y-%m-%dT%H:%M:%S}"


def broadcast_plan(number: str, slot: datetime, audio: Path, speaker_ids: list[str]) -> str:
    """An audio item (with its text, for the station to read out) at `slot` on the IP
    loudspeakers of Thất Khê and Tràng Định and on Thất Khê's station."""
    loa_a, loa_b = speaker_ids
    return f"""\
[plan]
number = "{number}"
title = "Tuyên truyền phòng cháy, chữa cháy rừng mùa khô"
issuer = "UBND tỉnh Lạng Sơn"
period_start = 2021-01-01
period_end = 2099-12-31

[[targets]]
channel = "loudspeaker"
count = 1
per = "day"
units = ["{THAT_KHE}", "{TRANG_DINH}"]

[[targets]]
channel = "station"
count = 1
per = "day"
units = ["{THAT_KHE}"]

[[content]]
key = "chay-rung"
kind = "audio"
title = "Phòng cháy rừng mùa khô — {{{{ unit.name }}}}"
body = \"\"\"
Kính thưa bà con {{{{ unit.name }}}}: trời hanh khô, nguy cơ cháy rừng cấp IV. \
Không đốt nương, không mang lửa vào rừng; thấy cháy báo ngay cho UBND xã.
\"\"\"
state = "approved"
audio = "{audio}"

[[endpoints]]
channel = "loudspeaker"
address = "{loa_a}"
name = "Loa cụm Nà Cạo"
unit = "{THAT_KHE}"

[[endpoints]]
channel = "loudspeaker"
address = "{loa_b}"
name = "Loa cụm Bản Piàng"
unit = "{TRANG_DINH}"

[[endpoints]]
channel = "station"
address = "station:{THAT_KHE}"
name = "Đài truyền thanh xã Thất Khê"
unit = "{THAT_KHE}"

[[schedules]]
name = "Phát trên loa thông minh"
content = "chay-rung"
channel = "loudspeaker"
targets = {{ endpoints = ["{loa_a}", "{loa_b}"] }}
start = {local(slot)}
validity = "10m"
misfire_grace = "1m"

[[schedules]]
name = "Phát trên đài xã"
content = "chay-rung"
channel = "station"
targets = {{ endpoints = ["station:{THAT_KHE}"] }}
start = {local(slot)}
validity = "2h"
misfire_grace = "1m"
"""


def station_plan(number: str, slot: datetime, unit: str, validity: str) -> str:
    """A text for one commune's station to read out at `slot`."""
    return f"""\
[plan]
number = "{number}"
title = "Tuyên truyền tiêm chủng mở rộng"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "tiem-chung"
kind = "text"
title = "Lịch tiêm chủng — {{{{ unit.name }}}}"
body = "Trạm y tế {{{{ unit.name }}}} tiêm vắc-xin sởi sáng thứ bảy; mang theo sổ tiêm."
state = "approved"

[[endpoints]]
channel = "station"
address = "station:{unit}"
unit = "{unit}"

[[schedules]]
name = "Đọc trên đài xã"
content = "tiem-chung"
channel = "station"
targets = {{ endpoints = ["station:{unit}"] }}
start = {local(slot)}
validity = "{validity}"
misfire_grace = "1m"
"""


def plan_numbers(first: int) -> list[str]:
    return [f"{first + n}/KH-UBND" for n in range(3)]


def test_operator_confirms_a_station_broadcast_on_a_phone_beside_played_loudspeakers(
    coso: CosoServer,
    speakers: PlayerGroup,
    new_page: Callable[..., Page],
    tmp_path: Path,
) -> None:
    audio = clip(tmp_path, 2.0)
    ids = sorted(speakers.runner.players)  # loa-thatkhe-…, loa-trangdinh-…

    def plan(number: str, slot: datetime) -> str:
        return broadcast_plan(number, slot, audio, ids)

    number, _ = import_near_slot(coso, tmp_path, plan, plan_numbers(31), room=10)

    phone = new_page(coso.url, "phone")
    phone.goto("/")  # → the login form, then back here
    expect(phone).to_have_url(re.compile(r"/login\?next=%2F$"))
    assert_fits_phone(phone)
    signed_in(phone, OPERATOR)
    phone.get_by_role("link", name="Xã Thất Khê").click()
    expect(phone.get_by_role("heading", name="Hôm nay · Xã Thất Khê")).to_be_visible()

    task = station_task(phone, "Phòng cháy rừng mùa khô — Xã Thất Khê")
    tap = task.get_by_role("button", name="Đã phát", exact=True)
    reload_until(phone, tap, "the station item due, with its Đã phát button")
    # The commune's loudspeaker, beside it: its player says it played.
    speaker = phone.locator("article.task", has_text="Loa cụm Nà Cạo")
    reload_until(phone, speaker.filter(has_text=f": {PLAYED}"), "the loudspeaker played")
    expect(task).to_contain_text(SENT)
    expect(task).to_contain_text("Kính thưa bà con Xã Thất Khê: trời hanh khô")
    expect(task).to_contain_text("Phát tệp âm thanh (2 giây)")
    expect(phone.locator("article.task", has_text="Bản Piàng")).to_have_count(0)  # not theirs
    assert_fits_phone(phone)
    screenshot(phone, "today-phone")

    desktop = signed_in(new_page(coso.url, "desktop"), OPERATOR)
    desktop.goto(f"/units/{THAT_KHE}/today")
    expect(station_task(desktop, "Phòng cháy rừng mùa khô — Xã Thất Khê")).to_contain_text(SENT)
    screenshot(desktop, "today-desktop")

    tap.click()
    expect(phone.get_by_role("status")).to_have_text("Đã ghi: đã phát")
    expect(task).to_contain_text(CONFIRMED)
    expect(tap).to_have_count(0)  # answered: nothing more to tap
    assert_fits_phone(phone)

    # The plan page, from the operator's first page: their commune's part of the plan.
    phone.get_by_role("link", name="coso", exact=True).click()
    phone.get_by_role("link", name=number, exact=True).click()
    expect(phone.get_by_role("heading", name=number)).to_be_visible()
    expect(count_row(phone, STATION, CONFIRMED).locator("td").last).to_have_text("1")
    expect(count_row(phone, LOUDSPEAKER, PLAYED).locator("td").last).to_have_text("1")
    confirmed = log_rows(phone, CONFIRMED)
    expect(confirmed).to_have_count(1)
    expect(confirmed.locator("td").nth(5)).to_have_text(OPERATOR)  # "bởi": who said so
    expect(confirmed).to_contain_text("Xã Thất Khê")
    assert_fits_phone(phone)
    assert_nothing_from_outside(phone)
    screenshot(phone, "plan-phone", full_page=True)

    # The province sees the whole broadcast: two loudspeakers played, the station confirmed.
    province = signed_in(new_page(coso.url, "desktop"), VIEWER)
    province.goto(f"/plans/{number}")
    both = count_row(province, LOUDSPEAKER, PLAYED).locator("td").last
    reload_until(province, both.filter(has_text=re.compile("^2$")), "2 loudspeakers played")
    expect(count_row(province, STATION, CONFIRMED).locator("td").last).to_have_text("1")
    expect(log_rows(province, CONFIRMED).locator("td").nth(5)).to_have_text(OPERATOR)
    played = log_rows(province, PLAYED)
    expect(played).to_have_count(2)
    for player, commune in zip(ids, ("Xã Thất Khê", "Xã Tràng Định"), strict=True):
        # Played, in the player's own word: the player is the actor.
        expect(played.filter(has_text=commune).locator("td").nth(5)).to_contain_text(player)
    screenshot(province, "plan-desktop", full_page=True)


def test_an_item_nobody_confirms_becomes_unconfirmed_when_its_validity_ends(
    coso: CosoServer, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    def plan(number: str, slot: datetime) -> str:
        return station_plan(number, slot, HOANG_VAN_THU, validity="10s")

    number, slot = import_near_slot(coso, tmp_path, plan, plan_numbers(41))
    end = slot + timedelta(seconds=10)

    phone = signed_in(new_page(coso.url, "phone"), SILENT)
    phone.goto(f"/units/{HOANG_VAN_THU}/today")
    task = station_task(phone, "Lịch tiêm chủng — Xã Hoàng Văn Thụ")
    reload_until(phone, task.get_by_role("button", name="Đã phát", exact=True), "the item due")
    expect(task).to_contain_text(f"hạn {end.astimezone(ZONE):%H:%M}")

    reload_until(phone, task.get_by_text(UNCONFIRMED), "the item unconfirmed", timeout=90)
    expect(task).to_contain_text("đã trễ")
    assert_fits_phone(phone)

    phone.get_by_role("link", name="coso", exact=True).click()
    plans = phone.get_by_role("row").filter(has=phone.get_by_role("link", name=number))
    expect(plans).to_contain_text("1 lượt lỗi / quá hạn")
    phone.get_by_role("link", name=number, exact=True).click()
    expect(count_row(phone, STATION, UNCONFIRMED).locator("td").last).to_have_text("1")
    unheard = log_rows(phone, UNCONFIRMED)
    expect(unheard).to_have_count(1)
    expect(unheard).to_contain_text("không người trực nào xác nhận đã phát")
    expect(unheard.locator("td").nth(5)).to_have_text("coso")  # "bởi": coso itself
    written = unheard.locator("td").first.inner_text()  # Thứ hai 07/12/2026 06:00:21
    when = re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", written)
    assert when, written
    at = datetime.strptime(when.group(), "%d/%m/%Y %H:%M:%S").replace(tzinfo=ZONE)
    assert at >= end.replace(microsecond=0), f"unconfirmed at {written}, before {end}"
    assert_fits_phone(phone)


def clash_plan(number: str, slot: datetime) -> str:
    """Two priority texts for Quốc Việt's station in one slot, queued in this order."""
    items = (("tiem-chung", "Lịch tiêm chủng đợt 3"), ("thue-dat", "Thu thuế đất năm 2021"))
    contents = "".join(
        f'[[content]]\nkey = "{key}"\nkind = "text"\ntitle = "{title}"\n'
        f'body = "Kính thưa bà con: {title}."\nstate = "approved"\n\n'
        for key, title in items
    )
    schedules = "".join(
        f'[[schedules]]\nname = "{title}"\ncontent = "{key}"\nchannel = "station"\n'
        f'targets = {{ endpoints = ["station:{QUOC_VIET}"] }}\nstart = {local(slot)}\n'
        f'validity = "2h"\npriority = "priority"\n\n'
        for key, title in items
    )
    return f"""\
[plan]
number = "{number}"
title = "Tin ưu tiên trên đài xã"
period_start = 2021-01-01
period_end = 2099-12-31

{contents}[[endpoints]]
channel = "station"
address = "station:{QUOC_VIET}"
unit = "{QUOC_VIET}"

{schedules}"""


def test_operator_puts_one_of_two_clashing_priority_items_first_on_a_phone(
    coso: CosoServer, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    slot = (datetime.now(ZONE) + timedelta(hours=3)).replace(microsecond=0)
    plan = write_plan(tmp_path, clash_plan("91/KH-UBND", slot), name="clash.toml")
    coso.cli("plan", "import", str(plan))

    phone = signed_in(new_page(coso.url, "phone"), ORDERER)
    phone.goto(f"/units/{QUOC_VIET}/today?day={slot:%d/%m/%Y}")
    clash = phone.locator("section.clash")
    expect(clash).to_have_count(1)
    expect(clash).to_contain_text(f"{slot:%H:%M}")
    expect(clash.locator("li .title")).to_have_text(
        ["Lịch tiêm chủng đợt 3", "Thu thuế đất năm 2021"]
    )
    assert_fits_phone(phone)

    clash.get_by_role("button", name="Đưa lên trước: Thu thuế đất năm 2021").click()
    expect(phone.get_by_role("status")).to_have_text("Đã đổi thứ tự phát")
    expect(clash.locator("li .title")).to_have_text(
        ["Thu thuế đất năm 2021", "Lịch tiêm chủng đợt 3"]
    )
    # The station's list of the day, read out in that order.
    expect(phone.locator("article.task h3")).to_have_text(
        ["Thu thuế đất năm 2021", "Lịch tiêm chủng đợt 3"]
    )
    expect(clash.get_by_role("button", name="Đưa lên trước: Lịch tiêm chủng đợt 3")).to_be_visible()
    assert_fits_phone(phone)


def _reply(url: str, phone: str, body: str) -> str:
    """The text coso answers an SMS with (TwiML), the SMS signed as the gateway signs it."""
    answer = post_callback(f"{url}/sms/inbound", {"From": phone, "Body": body})
    assert answer.status_code == 200, answer.text
    found = re.search(r"<Message>(.*)</Message>", answer.text, re.DOTALL)
    assert found, f"no reply to {body!r}: {answer.text}"
    return found.group(1)


def test_operator_confirms_by_sms_and_a_forged_or_mistyped_reply_changes_nothing(
    coso: CosoServer, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    def plan(number: str, slot: datetime) -> str:
        return station_plan(number, slot, TAN_TIEN, validity="2h")

    number, _ = import_near_slot(coso, tmp_path, plan, plan_numbers(51))
    phone = signed_in(new_page(coso.url, "phone"), TEXTER)
    phone.goto(f"/units/{TAN_TIEN}/today")
    task = station_task(phone, "Lịch tiêm chủng — Xã Tân Tiến")
    reload_until(phone, task.get_by_text("mã SMS"), "the item's code for SMS")
    found = re.search(r"mã SMS (\d{4,})", task.inner_text())
    assert found, task.inner_text()
    code = found.group(1)

    forged = post_callback(
        f"{coso.url}/sms/inbound", {"From": TEXTER_PHONE, "Body": f"XN {code}"}, token="f" * 32
    )
    assert forged.status_code == 403
    short = code[:-1]  # one digit left out: no code is that short
    said = _reply(coso.url, TEXTER_PHONE, f"XN {short}")
    assert f"Ma {short} khong dung hoac da het han; chua ghi nhan gi." in said
    phone.reload()
    expect(task).to_contain_text(SENT)
    expect(task.get_by_role("button", name="Đã phát", exact=True)).to_be_visible()
    log = coso.log_tail(50_000)
    assert "refused a request to /sms/inbound with a bad signature" in log
    assert f"station: refused 'XN {short}'" in log and "no open task has this code" in log

    said = _reply(coso.url, TEXTER_PHONE, f"XN {code}")
    assert said.startswith("Da ghi nhan: DA PHAT 'Lich tiem chung"), said
    phone.reload()
    expect(task).to_contain_text(CONFIRMED)
    phone.goto(f"/plans/{number}")
    confirmed = log_rows(phone, CONFIRMED)
    expect(confirmed).to_have_count(1)
    expect(confirmed).to_contain_text(TEXTER)
    expect(confirmed).to_contain_text("SMS")
