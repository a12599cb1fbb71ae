"""The console from end to end in a real browser, against a real `coso serve` with
loudspeaker players that play: an editor plans a broadcast, an approver approves it, the
editor schedules it for two communes' loudspeakers and one commune's station, the slot
fires, the players play it, and the station's operator confirms it on a phone. Then, an
edit of approved content that leaves the approved version going out until it is approved.

Everything a person does goes through the pages; the command line only makes the accounts
and the endpoints, as an administrator would before anyone logs in."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import tomli_w
from playwright.sync_api import Locator, Page, expect

from channels.loudspeaker.player.runtime import PlayerGroup
from coso.clock import SystemClock
from coso.config import load_settings
from dispatcher.cli.demo import demo_chime
from tests.browser.pages import assert_fits_phone, assert_nothing_from_outside
from tests.browser.server import CosoServer
from tests.fault_services import wait_until
from tests.loudspeakers import players, plays, shared_broker_url, slot_in

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PASSWORD = "mật-khẩu-thử-đủ-dài"
EDITOR, APPROVER, OPERATOR = "bientap-tinh", "pheduyet-tinh", "vanhanh-thatkhe"
ACCOUNTS = {  # login → name, role, unit
    EDITOR: ("Nguyễn Văn Biên", "editor", "20"),
    APPROVER: ("Trần Thị Duyệt", "approver", "20"),
    OPERATOR: ("Hoàng Văn Trực", "operator", "06040"),
}
SPEAKERS = {"loa-06040-01": "06040", "loa-06046-01": "06046"}
ENDPOINTS_CSV = """\
channel,address,name,unit
loudspeaker,loa-06040-01,Cụm loa khu phố 1 xã Thất Khê,06040
loudspeaker,loa-06046-01,Cụm loa trung tâm xã Tràng Định,06046
station,station:06040,Đài truyền thanh xã Thất Khê,06040
web,bulletin:06040,Trang tin xã Thất Khê,06040
"""
# From the moment the slot is chosen until both schedules are saved and the operator has
# opened the day before it: two forms and a login, about 5 s on two busy cores.
SCHEDULING_ROOM = 15  # seconds
PLAYED_WAIT = 90  # seconds after the slot for the players to report `played`


def accounts_and_endpoints(coso: CosoServer, tmp_path: Path, *logins: str) -> None:
    """The accounts named (as an administrator makes them) and the communes' endpoints."""
    for login in logins:
        name, role, unit = ACCOUNTS[login]
        coso.cli(
            "users", "add", login, "--name", name, "--role", role, "--unit", unit,
            "--password-stdin", stdin=PASSWORD + "\n",
        )  # fmt: skip
    endpoints = tmp_path / "diem-nhan.csv"
    endpoints.write_text(ENDPOINTS_CSV, encoding="utf-8")
    coso.cli("endpoints", "import", str(endpoints))


def logged_in(page: Page, login: str) -> Page:
    page.goto("/login")
    page.get_by_label("Tên đăng nhập").fill(login)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("button", name="Đăng xuất")).to_be_visible()
    return page


def cells(table: Locator) -> list[tuple[str, ...]]:
    """A table's rows as the texts of their cells (the heading row has none)."""
    rows = table.evaluate(
        "t => [...t.rows].map(r => [...r.cells].filter(c => c.tagName == 'TD')"
        ".map(c => c.innerText.trim()))"
    )
    return [tuple(row) for row in rows if row]


def section_table(page: Page, heading: str) -> Locator:
    return page.locator(f"h2:text-is('{heading}') + div table")


def counts(page: Page, number: str) -> dict[tuple[str, str], int]:
    """(channel, state) → deliveries, from the plan's JSON as the signed-in user reads it."""
    answer = page.request.get(f"/plans/{number}.json")
    assert answer.ok, f"/plans/{number}.json: {answer.status}"
    return {(c["channel"], c["state"]): c["count"] for c in answer.json()["counts"]}


def fired(page: Page, number: str) -> bool:
    """Both loudspeakers reported `played`, and the station's task is the operator's."""
    found = counts(page, number)
    return found.get(("loudspeaker", "played")) == 2 and found.get(("station", "sent")) == 1


@contextmanager
def loudspeaker_players(coso: CosoServer, work: Path) -> Iterator[PlayerGroup]:
    """The communes' players, given coso's media origin, their tokens and command keys as
    `coso players credentials` would; connected before this yields."""
    group = players(load_settings(coso.config), list(SPEAKERS), work)
    group.start()
    try:
        wait_until(
            lambda: all(link.client.is_connected() for link in group.links),
            60,
            "the players' connection to the broker",
        )
        yield group
    finally:
        group.stop()


@contextmanager
def console_with_players(
    coso_server: Callable[..., CosoServer], tmp_path: Path
) -> Iterator[CosoServer]:
    broker_url, own_broker = shared_broker_url()
    try:
        yield coso_server(
            {
                "timer": {"reconcile_every": "1s"},
                "channels": {"loudspeaker": {"broker": {"url": broker_url}}},
            }
        )
    finally:
        if own_broker is not None:
            own_broker.stop()


def next_minute(room: int) -> datetime:
    """The first whole minute (local time) at least `room` seconds from now: the schedule
    form takes hours and minutes."""
    earliest = SystemClock().now().astimezone(ZONE) + timedelta(seconds=room)
    return (earliest + timedelta(minutes=1)).replace(second=0, microsecond=0)


# --- what each person does -------------------------------------------------------------


def create_plan(editor: Page, number: str, title: str, units: str) -> None:
    """A plan for this month with a target: once a week on the loudspeakers of `units`."""
    today = SystemClock().now().astimezone(ZONE).date()
    editor.goto("/")
    editor.get_by_role("link", name="+ Tạo kế hoạch").click()
    editor.get_by_label("Số kế hoạch").fill(number)
    editor.get_by_label("Tên", exact=True).fill(title)
    editor.get_by_label("Từ ngày (dd/mm/yyyy)").fill(f"{today:%d/%m/%Y}")
    editor.get_by_label("Đến ngày (dd/mm/yyyy)").fill(f"{today + timedelta(days=30):%d/%m/%Y}")
    # Without a target unit, an editor of no organisation would make a plan nobody but an
    # administrator sees: the form says so and keeps what was typed.
    editor.get_by_role("button", name="Tạo", exact=True).click()
    expect(editor.get_by_role("alert")).to_contain_text("target_units")
    expect(editor.get_by_label("Số kế hoạch")).to_have_value(number)
    editor.get_by_label("Kênh", exact=True).select_option("loudspeaker")
    editor.get_by_label("Số lần").fill("1")
    editor.get_by_label("Mỗi").select_option("week")
    editor.get_by_label("Ở các đơn vị (mã, cách nhau bởi dấu cách)").fill(units)
    editor.get_by_role("button", name="Tạo", exact=True).click()
    expect(editor.get_by_role("heading", name=number)).to_be_visible()


def add_audio_item(editor: Page, key: str, title: str, wav: Path) -> None:
    editor.locator("summary", has_text="Thêm nội dung").click()
    editor.get_by_label("Mã (chữ không dấu, số, gạch ngang)").fill(key)
    editor.get_by_label("Loại").select_option("audio")
    editor.get_by_label("Tiêu đề").fill(title)
    editor.get_by_label("Tệp âm thanh (không bắt buộc)").set_input_files(wav)
    editor.get_by_role("button", name="Thêm nội dung (bản nháp)").click()
    expect(editor.get_by_role("heading", name=f"Nội dung {key}")).to_be_visible()
    expect(editor.get_by_text("Chưa có phiên bản nào được duyệt")).to_be_visible()
    # An editor does not approve.
    expect(editor.get_by_role("button", name=re.compile("Phê duyệt"))).to_have_count(0)


def listen(approver: Page) -> float:
    """What the approver's player loads of the item: its length in seconds (the browser
    decoded the clip coso prepared)."""
    clip = approver.locator("article.version audio")
    expect(clip).to_have_attribute("src", re.compile(r"^/console/media/[0-9a-f]{64}\.mp3$"))
    return float(
        clip.evaluate(
            """a => new Promise((done, failed) => {
                 a.addEventListener('loadedmetadata', () => done(a.duration));
                 a.addEventListener('error', () => failed(new Error('code ' + a.error.code)));
                 a.preload = 'metadata';
                 a.load();
               })"""
        )
    )


def approve(approver: Page, version: int) -> None:
    """On the item's page: approve its newest version, which then is the one going out."""
    approver.get_by_role("button", name=f"Phê duyệt phiên bản {version}").click()
    going_out = f"Đang phát: phiên bản {version}, duyệt bởi {APPROVER}"
    expect(approver.get_by_text(going_out)).to_be_visible()


def add_one_off_schedule(
    editor: Page, name: str, key: str, channel: str, units: str, slot: datetime
) -> None:
    editor.get_by_role("link", name="+ Thêm lịch phát").click()
    editor.get_by_label("Tên lịch").fill(name)
    editor.get_by_label("Nội dung").select_option(key)
    editor.get_by_label("Kênh", exact=True).select_option(channel)
    editor.get_by_label("Đơn vị (mã, cách nhau bởi dấu cách)").fill(units)
    editor.get_by_label("Lặp lại").select_option(label="Một lần")
    editor.get_by_label("Từ ngày (dd/mm/yyyy)").fill(f"{slot:%d/%m/%Y}")
    editor.get_by_label("Giờ phát (HH:MM, cách nhau bởi dấu phẩy)").fill(f"{slot:%H:%M}")
    editor.get_by_label("Hiệu lực sau giờ phát").fill("30m")
    editor.get_by_role("button", name="Thêm lịch").click()
    row = section_table(editor, "Lịch phát").locator("tr", has_text=name)
    expect(row).to_contain_text(f"Một lần, {slot:%H:%M} ngày {slot:%d/%m/%Y}")
    expect(row).to_contain_text("đang bật")


# --- the tests ---------------------------------------------------------------------------


def test_a_broadcast_planned_approved_and_scheduled_in_the_browser_plays_and_is_confirmed(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    number, key = "17/KH-TTVH", "ban-tin-bao"
    item = "Bản tin phòng chống bão số 3"
    with console_with_players(coso_server, tmp_path) as coso:
        accounts_and_endpoints(coso, tmp_path, EDITOR, APPROVER, OPERATOR)
        with loudspeaker_players(coso, tmp_path) as group:
            wav = tmp_path / "ban-tin-bao.wav"
            demo_chime().export(wav, format="wav").close()

            editor = logged_in(new_page(coso.url), EDITOR)
            communes = " ".join(SPEAKERS.values())
            create_plan(editor, number, "Tuyên truyền phòng chống thiên tai", communes)
            add_audio_item(editor, key, item, wav)

            approver = logged_in(new_page(coso.url), APPROVER)
            approver.goto(f"/plans/{number}/content/{key}")
            assert 2.0 < listen(approver) < 3.0  # the 2.4 s chime, as prepared
            approve(approver, 1)

            editor.goto(f"/plans/{number}")
            slot = next_minute(SCHEDULING_ROOM)
            add_one_off_schedule(editor, "Loa hai xã", key, "loudspeaker", communes, slot)
            add_one_off_schedule(editor, "Đài xã Thất Khê", key, "station", "06040", slot)
            operator = logged_in(new_page(coso.url, "phone"), OPERATOR)
            operator.get_by_role("link", name="Xã Thất Khê").click()
            expect(operator.get_by_role("heading", name="Hôm nay · Xã Thất Khê")).to_be_visible()
            task = operator.locator("article.task", has_text=item)
            assert SystemClock().now() < slot, (
                f"scheduling took longer than {SCHEDULING_ROOM} s: the slot passed before the "
                "schedules were saved and the operator looked"
            )
            # Before its slot, the item is on the operator's day, with nothing to confirm yet.
            expect(task).to_contain_text(f"{slot:%H:%M}")
            expect(task).to_contain_text("chưa đến giờ")
            expect(task.get_by_role("button", name="Đã phát", exact=True)).to_have_count(0)
            assert_fits_phone(operator)

            wait_until(
                lambda: fired(editor, number),
                (slot - SystemClock().now()).total_seconds() + PLAYED_WAIT,
                f"2 loudspeakers played and the station's task handed over "
                f"(counts {counts(editor, number)}; coso's log:\n{coso.log_tail()})",
                every=0.5,
            )
            assert {pid: plays(group, pid) for pid in SPEAKERS} == dict.fromkeys(SPEAKERS, 1)

        operator.reload()
        expect(task.locator("audio")).to_have_count(1)  # what to play, on the phone
        expect(task).to_contain_text("đã gửi")  # handed over: the operator's to play
        speaker = operator.locator("article.task", has_text="Cụm loa khu phố 1 xã Thất Khê")
        expect(speaker).to_contain_text("đã phát")  # the commune's loudspeaker, beside it
        assert_fits_phone(operator)
        task.get_by_role("button", name="Đã phát", exact=True).tap()
        expect(operator.get_by_role("status")).to_contain_text("Đã ghi: đã phát")
        expect(task).to_contain_text("đã xác nhận phát")
        expect(task.get_by_role("button", name="Đã phát", exact=True)).to_have_count(0)
        assert_fits_phone(operator)

        editor.goto(f"/plans/{number}")
        loudspeaker, station = "Loa truyền thanh thông minh", "Đài truyền thanh FM/hữu tuyến"
        results = cells(section_table(editor, "Kết quả gửi"))
        assert sorted(results) == sorted(
            [(loudspeaker, "đã phát", "2"), (station, "đã xác nhận phát", "1")]
        )
        log = cells(section_table(editor, "Nhật ký hoạt động"))
        who = sorted((row[1], row[5]) for row in log if row[1] in ("đã phát", "đã xác nhận phát"))
        assert who == [
            ("đã phát", "loa loa-06040-01"),
            ("đã phát", "loa loa-06046-01"),
            ("đã xác nhận phát", OPERATOR),
        ]
        for page in (editor, approver, operator):
            assert_nothing_from_outside(page)


def article_plan(number: str, key: str, body: str) -> str:
    return f"""\
[plan]
number = "{number}"
title = "Vận động tiêm chủng"
period_start = 2021-01-01
period_end = 2099-12-31

[[content]]
key = "{key}"
title = "Lời kêu gọi tiêm chủng"
body = "{body}"
state = "approved"

[[targets]]
channel = "web"
count = 1
per = "week"
units = ["06040"]
"""


def schedule_a_post_soon(coso: CosoServer, tmp_path: Path, number: str, key: str) -> None:
    """Add a one-off post to the commune's bulletin a few seconds ahead, as the console's
    schedule form does it: the plan as stored (`coso plan export`, the newest version of
    each item) with one more schedule, given back as an update. A slot that a slow update
    overtook never fires: then another schedule, with twice the room."""
    room = 10  # an update takes 2 to 8 s here
    for attempt in range(1, 4):
        document = tomllib.loads(coso.cli("plan", "export", number))
        slot = slot_in(room)
        document["schedules"].append(
            {
                "name": f"Đăng lời kêu gọi {attempt}",
                "content": key,
                "channel": "web",
                "targets": {"endpoints": ["bulletin:06040"]},
                "start": slot.astimezone(ZONE).replace(tzinfo=None),
                "validity": "2h",
                "misfire_grace": "30m",
            }
        )
        changed = tmp_path / f"ke-hoach-{attempt}.toml"
        changed.write_text(tomli_w.dumps(document, multiline_strings=True), encoding="utf-8")
        coso.cli("plan", "import", "--update", "--yes", "--by", EDITOR, str(changed))
        if SystemClock().now() < slot:
            return
        room *= 2
    raise AssertionError(f"three updates each took longer than the room given ({room // 2} s)")


def test_edited_approved_content_keeps_going_out_until_the_new_version_is_approved(
    coso_server: Callable[..., CosoServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    number, key = "52/KH-UBND", "loi-keu-goi"
    first = "Bản thứ nhất: tiêm mũi một tại trạm y tế xã từ 7 giờ sáng thứ bảy."
    second = "Bản thứ hai: tiêm mũi hai tại nhà văn hóa thôn từ 8 giờ sáng chủ nhật."
    coso = coso_server({"timer": {"reconcile_every": "1s"}})
    accounts_and_endpoints(coso, tmp_path, EDITOR, APPROVER)
    plan = tmp_path / "ke-hoach.toml"
    plan.write_text(article_plan(number, key, first), encoding="utf-8")
    coso.cli("plan", "import", str(plan))

    editor = logged_in(new_page(coso.url), EDITOR)
    editor.goto(f"/plans/{number}/content/{key}")
    expect(editor.get_by_text("Đang phát: phiên bản 1")).to_be_visible()
    editor.get_by_label("Nội dung").fill(second)
    editor.get_by_role("button", name="Lưu bản nháp").click()
    expect(editor.get_by_text("Đang phát: phiên bản 1,")).to_be_visible()
    draft = editor.locator("article.version[data-version='2']")
    expect(draft).to_contain_text("bản nháp")
    expect(draft).to_contain_text(second)

    # A delivery made now, between the edit and its approval, carries the approved text.
    schedule_a_post_soon(coso, tmp_path, number, key)
    wait_until(
        lambda: number in httpx.get(f"{coso.url}/bulletin", timeout=5).text,
        60,
        f"the post on /bulletin (coso's log:\n{coso.log_tail()})",
        every=0.3,
    )
    reader = new_page(coso.url, "phone")
    reader.goto("/bulletin")
    post = reader.locator("article.post", has_text=number)
    expect(post).to_contain_text(first)
    expect(post).not_to_contain_text(second)
    assert_fits_phone(reader)

    approver = logged_in(new_page(coso.url), APPROVER)
    approver.goto(f"/plans/{number}/content/{key}")
    approve(approver, 2)
    expect(approver.locator("article.version[data-version='1']")).to_contain_text("đã thay thế")
    for page in (editor, reader, approver):
        assert_nothing_from_outside(page)
