"""What a validated alert asks of the emergency: declare, update, cancel, or nothing, as
data (`AlertAction`), decided from the alert, the units its areas matched, the emergency
an earlier message of it declared, and the time. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatcher.cap.areas import AreaMatch
from dispatcher.cap.document import Alert
from dispatcher.cap.models import CANCELLED, DECLARED, EXPIRED, IGNORED, REFUSED, UPDATED

DECLARE, UPDATE, CANCEL, NOTHING = "declare", "update", "cancel", "nothing"
# Test and Exercise alerts reach only the endpoints marked for tests (a drill).
DRILL_STATUSES = ("Test", "Exercise")
SENT_STATUSES = ("Actual", *DRILL_STATUSES)
# The longest text and title an emergency takes; a longer description is cut, marked "…".
TEXT_MOST = 2000
TITLE_MOST = 120


def clipped(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


@dataclass(frozen=True)
class AlertAction:
    """One call to the emergency module (EmergencyRequest / update / cancel), or none."""

    kind: str  # declare, update, cancel, nothing
    outcome: str  # what the log says once it is done
    reason: str = ""
    text: str = ""
    title: str | None = None
    units: tuple[str, ...] = ()
    until: datetime | None = None
    drill: bool = False
    source: str = ""
    ref: str | None = None  # the emergency an update or a cancel acts on

    @property
    def sends(self) -> bool:
        return self.kind in (DECLARE, UPDATE)


def source_of(alert: Alert) -> str:
    """How the emergency names where it came from: "cap:<identifier>"."""
    return f"cap:{alert.identifier}"


def emergency_call(
    alert: Alert, match: AreaMatch, earlier_ref: str | None, now: datetime
) -> AlertAction:
    """The call `alert` asks for. `earlier_ref`: the emergency declared from a message this
    one references (an Update's or a Cancel's), if any."""
    if alert.status not in SENT_STATUSES:
        return AlertAction(NOTHING, IGNORED, f"status {alert.status}: không phát")
    if alert.msg_type not in ("Alert", "Update", "Cancel"):
        return AlertAction(NOTHING, IGNORED, f"msgType {alert.msg_type}: không phát")
    source = source_of(alert)
    if alert.msg_type == "Cancel":
        if earlier_ref is None:
            return AlertAction(
                NOTHING, IGNORED, "không có tình huống khẩn cấp nào đang phát từ bản tin được hủy"
            )
        note = alert.note or (alert.chosen_info().text() if alert.chosen_info() else "")
        return AlertAction(CANCEL, CANCELLED, note, source=source, ref=earlier_ref)
    info = alert.chosen_info()
    expires = alert.expires()
    if expires is not None and expires <= now:
        return AlertAction(NOTHING, EXPIRED, f"đã hết hạn lúc {expires.isoformat()}: không gửi gì")
    if not match.units:
        unknown = f" (mã không có: {', '.join(match.unknown_codes)})" if match.unknown_codes else ""
        return AlertAction(
            NOTHING, REFUSED, "area: vùng cảnh báo không khớp đơn vị hành chính nào" + unknown
        )
    text = clipped(info.text(), TEXT_MOST) if info else ""
    title = clipped(" ".join((info.headline or info.event).split()), TITLE_MOST) if info else None
    common = {
        "text": text,
        "title": title,
        "units": match.units,
        "until": expires,
        "drill": alert.status in DRILL_STATUSES,
        "source": source,
    }
    if alert.msg_type == "Update" and earlier_ref is not None:
        return AlertAction(UPDATE, UPDATED, ref=earlier_ref, **common)  # type: ignore[arg-type]
    reason = (
        "" if alert.msg_type == "Alert" else "bản tin trước chưa từng phát: phát như cảnh báo mới"
    )
    return AlertAction(DECLARE, DECLARED, reason, **common)  # type: ignore[arg-type]
