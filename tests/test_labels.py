"""What people read: every delivery state, activity-log event, role, priority, content state
and channel has Vietnamese words, and the console and the command line show them."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from channels import registry
from channels.states import PRIORITIES, STATES
from content.models import STATES as CONTENT_STATES
from coso.clock import date_text, local_text, time_text, weekday_text
from coso.labels import (
    EVENTS,
    ROLES,
    channel_label,
    content_state_label,
    event_label,
    priority_label,
    role_label,
    state_label,
)
from coso.labels import STATES as STATE_WORDS
from coso.users import ROLES as CONSOLE_ROLES
from dispatcher.web.app import page_templates

ROOT = Path(__file__).parent.parent
CODE = ("coso", "content", "channels", "schedules", "dispatcher")


def test_every_delivery_state_has_vietnamese_words() -> None:
    for state in (*STATES, "unconfirmed"):
        assert state in STATE_WORDS, state
        assert state_label(state) != state
    assert state_label("played") == "đã phát"
    assert state_label("failed") == "lỗi"
    assert state_label("confirmed") == "đã xác nhận phát"


def test_every_role_priority_and_content_state_has_vietnamese_words() -> None:
    assert set(ROLES) == set(CONSOLE_ROLES)
    assert [role_label(r) for r in CONSOLE_ROLES] == [
        "quản trị",
        "biên tập",
        "phê duyệt",
        "vận hành (xã)",
        "xem",
    ]
    assert [priority_label(p) for p in PRIORITIES] == ["thường", "ưu tiên", "khẩn cấp"]
    for state in CONTENT_STATES:
        assert content_state_label(state) != state


def _written_events() -> set[str]:
    """Every event name the code writes to the activity log: `event="…"` arguments, the
    third argument of `Outcome(…)`, `{"event": …}` rows, and tables of (state, event)."""
    found: set[str] = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found |= _events_in(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _events_in(tree: ast.Module) -> set[str]:
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def text(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            named = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if named == "Outcome" and len(node.args) >= 3:
                found.add(text(node.args[2]) or "")
            for kw in node.keywords:
                if kw.arg == "event":
                    found.add(text(kw.value) or "")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if text(key) == "event":
                    found.add(text(value) or "")
                # {provider status: (state, event)}: a channel's table of what it logs
                if isinstance(value, ast.Tuple) and len(value.elts) == 2:
                    state, event = value.elts
                    is_state = text(state) in STATES or (
                        isinstance(state, ast.Name) and state.id.lower() in STATES
                    )
                    if is_state and isinstance(event, ast.Constant):
                        found.add(text(event) or "")
    return found - {""}


def test_every_event_the_code_writes_has_vietnamese_words() -> None:
    written = _written_events()
    # The collection itself finds what the engine and each kind of channel write.
    assert {"queued", "missed", "expired", "requeued", "rejected", "status", "retry"} <= written
    assert {"received", "played", "published", "undelivered", "paused", "opted_out"} <= written
    missing = sorted(e for e in written if e not in EVENTS)
    assert missing == [], f"events without words in coso/labels.py EVENTS: {missing}"


def test_an_event_no_table_knows_is_shown_by_its_name() -> None:
    assert event_label("played") == "đã phát"
    assert event_label("queued") == "xếp lịch gửi"
    assert event_label("a_channels_own_event") == "a_channels_own_event"
    assert event_label(None) == state_label(None) == ""


def test_channel_names_come_from_each_plugins_title() -> None:
    titles = {name: plugin.title for name, plugin in registry.plugins().items()}
    assert titles, "no channel plugin installed"
    for name, title in titles.items():
        assert channel_label(name, titles, short=False) == title
        short = channel_label(name, titles)
        assert short and "(" not in short and title.startswith(short)
    assert channel_label("web", {"web": "Trang tin điện tử (bản tin, WordPress)"}) == (
        "Trang tin điện tử"
    )
    assert channel_label("fax", titles) == "fax"


def test_times_are_written_dd_mm_yyyy_in_the_plans_zone() -> None:
    utc = datetime(2021, 5, 2, 23, 0, 5, tzinfo=UTC)  # Monday 06:00:05 in Hà Nội
    zone = "Asia/Ho_Chi_Minh"
    assert local_text(utc, zone) == "Thứ hai 03/05/2021 06:00"
    assert local_text(utc, zone, seconds=True) == "Thứ hai 03/05/2021 06:00:05"
    assert date_text(utc, zone) == "03/05/2021"
    assert date_text(date(2021, 5, 3)) == "03/05/2021"
    assert time_text(utc, zone) == "06:00"
    assert time_text(utc, zone, seconds=True) == "06:00:05"
    assert weekday_text(utc, zone) == "Thứ hai"
    assert [weekday_text(d) for d in (0, 6)] == ["Thứ hai", "Chủ nhật"]


@pytest.mark.parametrize(
    ("template", "shown"),
    [
        ("{{ 'played' | state }}", "đã phát"),
        ("{{ 'retry_wait' | state }}", "chờ gửi lại"),
        ("{{ 'queued' | event }}", "xếp lịch gửi"),
        ("{{ 'operator' | role }}", "vận hành (xã)"),
        ("{{ 'emergency' | priority }}", "khẩn cấp"),
        ("{{ 'approved' | content_state }}", "đã duyệt"),
        ("{{ 'web' | channel }}", "Trang tin điện tử"),
        ("{{ 'web' | channel(short=False) }}", "Trang tin điện tử (bản tin, WordPress)"),
        ("{{ day | date }}", "03/05/2021"),
        ("{{ at | date('Asia/Ho_Chi_Minh') }}", "03/05/2021"),
        ("{{ at | time('Asia/Ho_Chi_Minh', seconds=True) }}", "06:00:05"),
        ("{{ at | local('Asia/Ho_Chi_Minh', seconds=True) }}", "Thứ hai 03/05/2021 06:00:05"),
        ("{{ at | weekday('Asia/Ho_Chi_Minh') }}", "Thứ hai"),
        ("{{ schedule | timing }}", "Thứ hai đến thứ bảy, 05:30"),
    ],
)
def test_pages_have_filters_for_what_people_read(template: str, shown: str) -> None:
    class Row:
        start_local = "2021-05-03T05:30:00"
        rrule = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA"
        until_local = None

    env = page_templates().env
    values = {
        "day": date(2021, 5, 3),
        "at": datetime(2021, 5, 2, 23, 0, 5, tzinfo=UTC),
        "schedule": Row(),
    }
    assert env.from_string(template).render(**values) == shown


def test_who_did_it_reads_as_words() -> None:
    from coso.labels import actor_label

    titles = {"station": "Đài truyền thanh FM/hữu tuyến (người trực xác nhận)"}
    assert actor_label("player:loa-06040-01", titles) == "loa loa-06040-01"
    assert actor_label("channel:station", titles) == "kênh Đài truyền thanh FM/hữu tuyến"
    assert actor_label("timer", titles) == "bộ hẹn giờ"
    assert actor_label("vanhanh-thatkhe", titles) == "vanhanh-thatkhe"  # a person's login
