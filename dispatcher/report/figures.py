"""The report's figures, each defined once (docs/report.md lists them from here).

Every figure counts deliveries (one item for one endpoint at one slot) by their **outcome**:
the state of the last entry the activity log holds for the delivery. Transitions only move
forward, so that is what became of it; the log stays the only source."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from channels.states import (
    EXPIRED,
    FAILED,
    MISSED,
    PENDING,
    PROVEN,
    RETRY_WAIT,
    SENDING,
    SENT,
    UNCONFIRMED,
    UNKNOWN,
)

# Reached people, as a device or a person confirmed it.
DONE = PROVEN
WAITING = (PENDING, SENDING, RETRY_WAIT)
UNDELIVERED = "undelivered"  # the event of a message the network could not deliver

# (key, the column's heading, what it counts)
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("expected", "Kế hoạch", "deliveries the plan's schedules made in the period (slot time)"),
    ("done", "Đã đến người nghe", "outcome played, confirmed, delivered or displayed"),
    ("played", "Đã phát", "outcome played: a device reported it played to the end"),
    ("confirmed", "Đã xác nhận", "outcome confirmed: a person said it was broadcast"),
    ("delivered", "Đã đến", "outcome delivered: the far end reported it (an SMS, a post)"),
    ("displayed", "Đã hiển thị", "outcome displayed: a board reported showing it"),
    ("sent", "Đã gửi, chưa có báo cáo", "outcome sent: accepted, no report from the far end"),
    ("waiting", "Đang chờ gửi", "outcome pending, sending or retry_wait"),
    ("unconfirmed", "Chưa xác nhận", "outcome unconfirmed: nobody confirmed it in time"),
    ("missed", "Bỏ lỡ", "outcome missed: its slot passed while coso was not running"),
    (
        "expired",
        "Quá hạn",
        "outcome expired: not out, or not acknowledged, before its validity ended",
    ),
    ("failed", "Lỗi", "outcome failed (undelivered included)"),
    ("undelivered", "Không đến máy nhận", "failed with the event undelivered (SMS network)"),
    ("unknown", "Không rõ", "outcome unknown: the answer was lost; not re-sent blindly"),
    ("airtime_minutes", "Phút phát sóng", "clip length of each delivery with audio in done"),
    ("reached", "Điểm nhận khác nhau", "distinct endpoints with a done delivery (people, for SMS)"),
)
LABELS = {key: label for key, label, _ in FIGURES}
COUNTED = tuple(key for key, _, _ in FIGURES if key not in ("airtime_minutes", "reached"))
_ZERO = dict.fromkeys(COUNTED, 0)


@dataclass
class Tally:
    """The figures of one line of the report (a channel, a unit, a week, …)."""

    counts: dict[str, int] = field(default_factory=lambda: dict(_ZERO))
    airtime_seconds: float = 0.0
    reached: int | None = None  # None: not countable on this line (a week: distinct per week)

    def add(self, state: str, event: str | None, n: int, clip_seconds: float = 0.0) -> None:
        """`n` deliveries with this outcome; `clip_seconds`: their clips' length, together
        (airtime where they reached people)."""
        c = self.counts
        c["expected"] += n
        if state in DONE:
            c["done"] += n
            c[state] += n
            self.airtime_seconds += clip_seconds
        elif state == SENT:
            c["sent"] += n
        elif state in WAITING:
            c["waiting"] += n
        elif state == FAILED:
            c["failed"] += n
            if event == UNDELIVERED:
                c["undelivered"] += n
        elif state in (UNCONFIRMED, MISSED, EXPIRED, UNKNOWN):
            c[state] += n

    def merge(self, other: Tally) -> None:
        for key, n in other.counts.items():
            self.counts[key] += n
        self.airtime_seconds += other.airtime_seconds

    @property
    def airtime_minutes(self) -> float:
        return round(self.airtime_seconds / 60, 1)

    def value(self, key: str) -> int | float | None:
        if key == "airtime_minutes":
            return self.airtime_minutes
        if key == "reached":
            return self.reached
        return self.counts[key]


def total(tallies: Iterable[Tally]) -> Tally:
    out = Tally()
    for t in tallies:
        out.merge(t)
    return out
