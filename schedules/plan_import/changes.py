"""What a checked plan file would change in the stored plan of its number, as data with a
Vietnamese description each (`coso plan import --update` and the console show them).

Content is matched by key and schedules by name. Nothing is deleted: content the file no
longer has is retired, a schedule it no longer has is disabled (its history kept)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from content.models import APPROVED, DRAFT, RETIRED
from coso.weektimes import clock_text, weekdays_text
from schedules.plan_import.checker import Context
from schedules.plan_import.stored import (
    HEADER_FIELDS,
    SCHEDULE_FIELDS,
    StoredPlan,
    target_key,
)
from schedules.plan_import.writer import schedule_values

ADDED, CHANGED, REMOVED = "added", "changed", "removed"
NO_CHANGES = "không có thay đổi"

SECTION_NAMES = {
    "plan": "kế hoạch",
    "targets": "chỉ tiêu",
    "content": "nội dung",
    "endpoints": "điểm nhận",
    "groups": "nhóm",
    "schedules": "lịch",
    "sessions": "buổi phát",
}
ACTION_NAMES = {ADDED: "thêm", CHANGED: "sửa", REMOVED: "bỏ"}
# What removing means where nothing is deleted.
REMOVED_NAMES = {"content": "ngừng dùng", "schedules": "tắt"}
STATE_NAMES = {DRAFT: "bản nháp", APPROVED: "đã duyệt", RETIRED: "ngừng dùng"}
KIND_NAMES = {"text": "văn bản", "audio": "âm thanh", "article": "bài viết"}
PRIORITY_NAMES = {"normal": "thường", "priority": "ưu tiên", "emergency": "khẩn cấp"}
PER_NAMES = {"day": "ngày", "week": "tuần", "month": "tháng", "plan": "cả kế hoạch"}
HEADER_LABELS = {
    "title": "tiêu đề",
    "issuer": "cơ quan ban hành",
    "organisation": "đơn vị thực hiện",
    "issued_on": "ngày ban hành",
    "period_start": "từ ngày",
    "period_end": "đến ngày",
    "zone": "múi giờ",
}
# schedule column → (the plan file's key, its label)
SCHEDULE_LABELS = {
    "content": ("content", "nội dung"),
    "channel": ("channel", "kênh"),
    "targets": ("targets", "đối tượng"),
    "start_local": ("start", "bắt đầu"),
    "rrule": ("rrule", "lặp lại"),
    "until_local": ("until", "đến"),
    "exdates_local": ("exdates", "bỏ các lần"),
    "zone": ("zone", "múi giờ"),
    "priority": ("priority", "mức ưu tiên"),
    "validity_seconds": ("validity", "hiệu lực"),
    "misfire_grace_seconds": ("misfire_grace", "phát bù nếu lỡ trong"),
    "resend_unknown": ("resend_unknown", "gửi lại khi mất kết quả"),
    "options": ("options", "tùy chọn kênh"),
    "rotation": ("rotation", "luân phiên"),
    "rotation_policy": ("policy", "cách luân phiên"),
    "rotation_weights": ("weights", "trọng số"),
    "queue": ("queue", "xếp vào buổi phát"),
    "rdates_local": ("queue", "các buổi phát đã xếp"),
    "enabled": ("enabled", "bật"),
}
# Changing these changes when a schedule fires: slots before the change are not back-filled.
TIMING_FIELDS = frozenset({"start", "rrule", "until", "exdates", "zone", "queue"})
SHORT = 60  # characters of a text shown in a change


@dataclass(frozen=True)
class FieldChange:
    field: str  # as the plan file names it
    label: str  # in Vietnamese
    before: str  # as people read it
    after: str


@dataclass(frozen=True)
class PlanChange:
    section: str  # plan, targets, content, endpoints, groups, schedules
    action: str  # added, changed, removed
    subject: str  # a content key, a schedule's name, an address…
    description: str  # in Vietnamese, one line
    fields: tuple[FieldChange, ...] = ()
    index: int | None = None  # its entry in the file's section
    stored_id: int | None = None  # the stored row it changes

    @property
    def section_name(self) -> str:
        return SECTION_NAMES[self.section]

    @property
    def action_name(self) -> str:
        if self.action == REMOVED:
            return REMOVED_NAMES.get(self.section, ACTION_NAMES[REMOVED])
        return ACTION_NAMES[self.action]


def plan_changes(stored: StoredPlan, checked: Context) -> list[PlanChange]:
    """The changes, in the file's order of sections; an empty list when there are none."""
    return [
        *_header(stored, checked),
        *_targets(stored, checked),
        *_content(stored, checked),
        *_endpoints(stored, checked),
        *_groups(stored, checked),
        *_sessions(checked),
        *_schedules(stored, checked),
    ]


def _sessions(ctx: Context) -> Iterator[PlanChange]:
    """Sessions and day changes of the file that are not stored yet (the check refused any
    that differ from a stored one: the file adds sessions, the console edits them)."""
    for d in ctx.session_defs:
        when = f"{weekdays_text(d.weekdays)} {clock_text(d.start)}, {d.minutes} phút"
        text = f"{d.name} của {d.scope} ({when})"
        yield PlanChange("sessions", ADDED, f"{d.scope} {d.name}", f"Thêm buổi phát {text}")
    for c in ctx.session_changes:
        where = f" của {c.scope}" if c.scope else ""
        what = f"buổi {c.session}" if c.session else "các buổi"
        if c.kind == "add":
            text = f"Thêm buổi {c.session}{where} ngày {c.day:%d/%m/%Y} lúc {clock_text(c.start)}"
        else:
            text = f"Nghỉ {what}{where} ngày {c.day:%d/%m/%Y}"
        yield PlanChange("sessions", ADDED, f"{c.day:%d/%m/%Y} {c.scope} {c.session}", text)


def _header(stored: StoredPlan, ctx: Context) -> Iterator[PlanChange]:
    head = ctx.pf.plan
    wanted = {name: getattr(head, name) for name in HEADER_FIELDS}
    wanted["zone"] = ctx.zone
    fields = tuple(
        FieldChange(name, HEADER_LABELS[name], _shown(stored.header[name]), _shown(value))
        for name, value in wanted.items()
        if stored.header[name] != value
    )
    if fields:
        yield PlanChange(
            "plan",
            CHANGED,
            stored.number,
            f"Sửa kế hoạch {stored.number}: {_listed(fields)}",
            fields,
            stored_id=stored.id,
        )


def _targets(stored: StoredPlan, ctx: Context) -> Iterator[PlanChange]:
    remaining = list(stored.targets)
    for i, t in enumerate(ctx.pf.targets):
        key = target_key(t.channel, t.count, t.per, t.units, t.note)
        same = next((pair for pair in remaining if pair[1] == key), None)
        if same is not None:
            remaining.remove(same)
            continue
        text = _target_text(key)
        yield PlanChange("targets", ADDED, text, f"Thêm chỉ tiêu: {text}", index=i)
    for target_id, key in remaining:
        text = _target_text(key)
        yield PlanChange("targets", REMOVED, text, f"Bỏ chỉ tiêu: {text}", stored_id=target_id)


def _target_text(key: tuple[Any, ...]) -> str:
    channel, count, per, units, note = key
    text = f"{channel} {count} lần/{PER_NAMES.get(per, per)}"
    if units:
        text += f", đơn vị {', '.join(units)}"
    return text + (f" ({note})" if note else "")


def _content(stored: StoredPlan, ctx: Context) -> Iterator[PlanChange]:
    in_file = set()
    for i, item in enumerate(ctx.pf.content):
        in_file.add(item.key)
        old = stored.content.get(item.key)
        audio = ctx.audio.get(item.key)
        if old is None:
            what = f"{KIND_NAMES.get(item.kind, item.kind)}, {STATE_NAMES[item.state]}"
            what += ", có âm thanh" if audio else ""
            yield PlanChange(
                "content", ADDED, item.key, f"Thêm nội dung {item.key!r} ({what})", index=i
            )
            continue
        if old.state == RETIRED:
            continue  # and the file says so too (checked)
        if item.state == RETIRED:
            field = FieldChange("state", "trạng thái", STATE_NAMES[old.state], "ngừng dùng")
            yield PlanChange(
                "content",
                CHANGED,
                item.key,
                f'Ngừng dùng nội dung {item.key!r} (tệp ghi state = "retired"): không gửi đi nữa',
                (field,),
                index=i,
                stored_id=old.id,
            )
            continue
        fields = []
        if item.title != old.title:
            fields.append(FieldChange("title", "tiêu đề", *_difference(old.title, item.title)))
        if item.body != old.body:
            fields.append(FieldChange("body", "nội dung", *_difference(old.body, item.body)))
        if audio is not None and audio[0].sha256 != old.media_sha256:
            before = f"{old.media_sha256[:12]}…" if old.media_sha256 else "—"
            after = f"{audio[1]} ({audio[0].sha256[:12]}…, {audio[0].duration_seconds:.1f} s)"
            fields.append(FieldChange("audio", "âm thanh", before, after))
        if not fields:
            continue
        new = old.latest + 1
        if old.state == APPROVED:
            what = (
                f"bản nháp phiên bản {new}; phiên bản {old.version} đã duyệt vẫn được gửi cho"
                f" tới khi phiên bản {new} được duyệt"
            )
        else:
            what = f"phiên bản {new} (bản nháp)"
        yield PlanChange(
            "content",
            CHANGED,
            item.key,
            f"Sửa nội dung {item.key!r}: {_listed(tuple(fields))} — {what}",
            tuple(fields),
            index=i,
            stored_id=old.id,
        )
    for old in stored.content.values():
        if old.key not in in_file and old.state != RETIRED:
            yield PlanChange(
                "content",
                REMOVED,
                old.key,
                f"Ngừng dùng nội dung {old.key!r} (không còn trong tệp): không gửi đi nữa",
                stored_id=old.id,
            )


def _endpoints(stored: StoredPlan, ctx: Context) -> Iterator[PlanChange]:
    seen: set[tuple[str, str]] = set()
    for i, ep in enumerate(ctx.pf.endpoints):
        key = (ep.channel, ep.address)
        if key in stored.endpoints or key in seen:
            continue
        seen.add(key)
        what = f"{ep.channel} {ep.address}"
        extra = ", ".join(x for x in (ep.name, f"đơn vị {ep.unit}" if ep.unit else "") if x)
        yield PlanChange(
            "endpoints",
            ADDED,
            what,
            f"Thêm điểm nhận {what}" + (f" ({extra})" if extra else ""),
            index=i,
        )


def _groups(stored: StoredPlan, ctx: Context) -> Iterator[PlanChange]:
    for i, group in enumerate(ctx.pf.groups):
        if group.name in stored.groups:
            continue  # the same as stored (checked)
        parts = [f"{len(group.endpoints)} điểm nhận"]
        if group.units:
            parts.append(f"đơn vị {', '.join(group.units)}")
        yield PlanChange(
            "groups",
            ADDED,
            group.name,
            f"Thêm nhóm {group.name!r} ({group.channel}: {', '.join(parts)})",
            index=i,
        )


def _schedules(stored: StoredPlan, ctx: Context) -> Iterator[PlanChange]:
    matched: set[int] = set()
    for i, sch in enumerate(ctx.pf.schedules):
        values = {"content": sch.content, **schedule_values(ctx, sch)}
        old = next(
            (s for s in stored.schedules if s.name == sch.name and s.id not in matched), None
        )
        if old is None:
            timing = _shown_value("rrule", values["rrule"])
            off = "" if sch.enabled else ", đang tắt"
            yield PlanChange(
                "schedules",
                ADDED,
                sch.name,
                f"Thêm lịch {sch.name!r}: {sch.channel}, nội dung {sch.content!r}, bắt đầu"
                f" {_shown_value('start_local', values['start_local'])}, {timing}{off}",
                index=i,
            )
            continue
        matched.add(old.id)
        before = {"content": old.content, **old.values}
        fields = tuple(
            FieldChange(
                SCHEDULE_LABELS[name][0],
                SCHEDULE_LABELS[name][1],
                _shown_value(name, before[name]),
                _shown_value(name, values[name]),
            )
            for name in ("content", *SCHEDULE_FIELDS)
            if before[name] != values[name]
        )
        if fields:
            yield PlanChange(
                "schedules",
                CHANGED,
                sch.name,
                f"Sửa lịch {sch.name!r}: {_listed(fields)}",
                fields,
                index=i,
                stored_id=old.id,
            )
    for old in stored.schedules:
        if old.id not in matched and old.values["enabled"] and not old.finished:
            yield PlanChange(
                "schedules",
                REMOVED,
                old.name,
                f"Tắt lịch {old.name!r} (không còn trong tệp): không phát nữa, lịch sử vẫn giữ",
                stored_id=old.id,
            )


def _listed(fields: tuple[FieldChange, ...]) -> str:
    return "; ".join(f"{f.label} {f.before} → {f.after}" for f in fields)


def _difference(before: str, after: str) -> tuple[str, str]:
    """Two texts as shown side by side: from a little before where they first differ."""
    old, new = " ".join(before.split()), " ".join(after.split())
    same = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
    if same is None:
        same = min(len(old), len(new))
    start = max(0, same - SHORT // 3)
    if start == 0:
        return _text(old), _text(new)
    return _text("…" + old[start:]), _text("…" + new[start:])


def _text(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= SHORT else flat[: SHORT - 1] + "…")


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "có" if value else "không"
    if isinstance(value, datetime):
        return f"{value:%d/%m/%Y %H:%M}" + (f":{value:%S}" if value.second else "")
    if isinstance(value, date):
        return f"{value:%d/%m/%Y}"
    if isinstance(value, str):
        return _text(value)
    return str(value)


def _shown_value(name: str, value: Any) -> str:
    """A schedule's column as people read it."""
    if value is None:
        return "một lần" if name == "rrule" else "—"
    if name in ("start_local", "until_local"):
        return _shown(datetime.fromisoformat(value))
    if name == "exdates_local":
        return ", ".join(_shown(datetime.fromisoformat(x)) for x in value) or "—"
    if name in ("validity_seconds", "misfire_grace_seconds"):
        return _duration(int(value))
    if name == "priority":
        return PRIORITY_NAMES.get(value, value)
    if name == "targets":
        parts = [
            f"{label} {', '.join(value.get(key) or [])}"
            for key, label in (("units", "đơn vị"), ("groups", "nhóm"), ("endpoints", "điểm nhận"))
            if value.get(key)
        ]
        return "; ".join(parts) or "—"
    if name in ("options", "rotation_weights"):
        return ", ".join(f"{k} = {v}" for k, v in sorted(value.items())) or "—"
    if name == "rotation":
        return ", ".join(value) or "—"
    if name in ("rrule", "channel", "zone"):
        return str(value)
    return _shown(value)


def _duration(seconds: int) -> str:
    parts = []
    for size, unit in ((86400, "ngày"), (3600, "giờ"), (60, "phút"), (1, "giây")):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts) or "0 giây"
