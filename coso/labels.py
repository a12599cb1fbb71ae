"""What people read for coso's ids: delivery states, activity-log events, roles, priorities,
content states, device statuses and channel names, in Vietnamese. One table each, so that a
page, a report and the command line say the same thing. Machine outputs (JSON, CSV, the
command line's filters) keep the English ids.

Channel names come from each channel's plugin (`ChannelPlugin.title`): the foundation does
not know the channels, so `channel_label` takes the titles from its caller (the console and
the command line read them from `channels.registry`)."""

from __future__ import annotations

from collections.abc import Mapping

# channels.states.STATES, and `unconfirmed` (a station delivery nobody confirmed in time).
STATES: Mapping[str, str] = {
    "pending": "chờ gửi",
    "sending": "đang gửi",
    "sent": "đã gửi",
    "delivered": "đã nhận",
    "played": "đã phát",
    "displayed": "đã hiển thị",
    "confirmed": "đã xác nhận phát",
    "failed": "lỗi",
    "retry_wait": "chờ gửi lại",
    "expired": "quá hạn",
    "missed": "bị lỡ",
    "unknown": "không rõ",
    "unconfirmed": "chưa xác nhận",
}

# What the activity log's `event` column holds. Several are a state's own name; the others
# say how a delivery got there or what happened beside it.
EVENTS: Mapping[str, str] = {
    **STATES,
    "queued": "xếp lịch gửi",
    "received": "thiết bị đã nhận",
    "published": "đã đăng",
    "undelivered": "không đến được máy nhận",
    "canceled": "bị hủy",
    "retry": "chờ gửi lại",
    "requeued": "gửi lại sau khi khởi động lại",
    "resend": "gửi lại theo yêu cầu",
    "awaiting_confirmation": "chờ người trực xác nhận",
    "unknown": "không rõ kết quả",
    "reconciled": "đã đối chiếu với cổng gửi",
    "paused": "tạm hoãn (ngoài giờ được gửi)",
    "held": "tạm giữ (đủ số tin trong ngày)",
    "opted_out": "người nhận đã từ chối nhận tin",
    "rejected": "từ chối báo cáo không hợp lệ",
    "status": "báo cáo đến muộn, không đổi trạng thái",
    "not_played": "không phát được",
    "ended": "kết thúc trước hạn (khẩn cấp gỡ khỏi bảng)",
    "note": "ghi chú",
    "emergency_declared": "phát lệnh khẩn cấp",
    "emergency_updated": "cập nhật tin khẩn cấp",
    "emergency_cancelled": "huỷ tin khẩn cấp",
    "emergency_drill": "diễn tập khẩn cấp",
}

# schedules.emergencies: an emergency as people read it.
EMERGENCY_STATES: Mapping[str, str] = {
    "active": "đang phát",
    "cancelled": "đã huỷ",
    "ended": "đã hết hạn",
}

ROLES: Mapping[str, str] = {
    "administrator": "quản trị",
    "editor": "biên tập",
    "approver": "phê duyệt",
    "operator": "vận hành (xã)",
    "viewer": "xem",
}

# Thông tư 39/2020: the three priorities of a bulletin.
PRIORITIES: Mapping[str, str] = {
    "normal": "thường",
    "priority": "ưu tiên",
    "emergency": "khẩn cấp",
}

# content.models.STATES
CONTENT_STATES: Mapping[str, str] = {
    "draft": "bản nháp",
    "approved": "đã duyệt",
    "retired": "ngừng sử dụng",
}

# A plan target's period (schedules.planfile.TargetEntry.per).
PERIODS: Mapping[str, str] = {
    "day": "ngày",
    "week": "tuần",
    "month": "tháng",
    "plan": "cả kế hoạch",
}

# A device (a loudspeaker player, a board) as its last status says.
DEVICE_STATUSES: Mapping[str, str] = {
    "online": "đang kết nối",
    "offline": "mất kết nối",
    "never_seen": "chưa từng kết nối",
    "playing": "đang phát",
}


def _label(table: Mapping[str, str], key: str | None) -> str:
    """The words for `key`; an id the table does not know is shown as it is (a channel may
    write events of its own), and no id as nothing."""
    if key is None:
        return ""
    return table.get(key, key)


def state_label(state: str | None) -> str:
    return _label(STATES, state)


def event_label(event: str | None) -> str:
    return _label(EVENTS, event)


def role_label(role: str | None) -> str:
    return _label(ROLES, role)


def emergency_state_label(state: str | None) -> str:
    return _label(EMERGENCY_STATES, state)


def priority_label(priority: str | None) -> str:
    return _label(PRIORITIES, priority)


def content_state_label(state: str | None) -> str:
    return _label(CONTENT_STATES, state)


# Who did it, when it was not a person (the log's "bởi"): coso's own parts; a device or a
# channel is shown by its kind and name (actor_label).
ACTORS: Mapping[str, str] = {
    "timer": "bộ hẹn giờ",
    "dispatcher": "bộ điều phối",
    "coso": "coso",
}
ACTOR_KINDS: Mapping[str, str] = {"player": "loa", "channel": "kênh"}


def actor_label(actor: str | None, titles: Mapping[str, str]) -> str:
    """'player:loa-01' → 'loa loa-01', 'channel:station' → 'kênh Đài truyền thanh …',
    'timer' → 'bộ hẹn giờ'; a person's login as it is."""
    if not actor:
        return ""
    if actor in ACTORS:
        return ACTORS[actor]
    kind, sep, name = actor.partition(":")
    if sep and kind in ACTOR_KINDS:
        shown = channel_label(name, titles) if kind == "channel" else name
        return f"{ACTOR_KINDS[kind]} {shown}"
    return actor


def period_label(per: str | None) -> str:
    return _label(PERIODS, per)


def device_status_label(status: str | None) -> str:
    return _label(DEVICE_STATUSES, status)


def channel_label(name: str | None, titles: Mapping[str, str], short: bool = True) -> str:
    """A channel's title from `titles` (name → `ChannelPlugin.title`); `short` drops the
    part in brackets ("Loa truyền thanh thông minh (IP, MQTT)" → "Loa truyền thanh thông
    minh"), for tables. A channel that is not installed shows its name."""
    if name is None:
        return ""
    title = titles.get(name)
    if not title:
        return name
    if short:
        head = title.split(" (", 1)[0].strip()
        return head or title
    return title


# What became of a CAP document received (dispatcher.cap.models.OUTCOMES).
CAP_OUTCOMES: Mapping[str, str] = {
    "receiving": "đang xử lý",
    "refused": "bị từ chối",
    "waiting": "chờ duyệt",
    "declared": "đã phát khẩn cấp",
    "updated": "đã cập nhật tin khẩn cấp",
    "cancelled": "đã hủy tin khẩn cấp",
    "expired": "đã hết hạn, không gửi",
    "ignored": "không cần phát",
    "rejected": "không được duyệt",
    "repeated": "trùng bản tin đã nhận",
    "failed": "lỗi khi phát",
}

# CAP's own words (status, msgType, severity) as a person reads them.
CAP_WORDS: Mapping[str, str] = {
    "Actual": "thật",
    "Exercise": "diễn tập",
    "System": "hệ thống",
    "Test": "thử nghiệm",
    "Draft": "bản nháp",
    "Alert": "cảnh báo",
    "Update": "cập nhật",
    "Cancel": "hủy",
    "Ack": "xác nhận",
    "Error": "báo lỗi",
    "Extreme": "cực kỳ nghiêm trọng",
    "Severe": "nghiêm trọng",
    "Moderate": "trung bình",
    "Minor": "nhẹ",
    "Unknown": "không rõ",
}


def cap_outcome_label(outcome: str | None) -> str:
    return _label(CAP_OUTCOMES, outcome)


def cap_word_label(word: str | None) -> str:
    return _label(CAP_WORDS, word)
