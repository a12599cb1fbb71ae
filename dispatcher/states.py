"""Delivery states and the only moves allowed between them (always forward)."""

from __future__ import annotations

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
PLAYED = "played"
CONFIRMED = "confirmed"
FAILED = "failed"
RETRY_WAIT = "retry_wait"
EXPIRED = "expired"
MISSED = "missed"
UNKNOWN = "unknown"

STATES = (
    PENDING,
    SENDING,
    SENT,
    DELIVERED,
    PLAYED,
    CONFIRMED,
    FAILED,
    RETRY_WAIT,
    EXPIRED,
    MISSED,
    UNKNOWN,
)
WAITING = (PENDING, RETRY_WAIT)
REACHED = (SENT, DELIVERED, PLAYED, CONFIRMED)
FINAL = (DELIVERED, PLAYED, CONFIRMED, FAILED, EXPIRED, MISSED)

# target state -> states a delivery may be in to move there. Callbacks arrive out of order:
# a `sent` after `delivered` finds no allowed source and changes nothing.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    SENDING: (PENDING, RETRY_WAIT),
    PENDING: (SENDING,),  # crash recovery, channels that are safe to re-send
    RETRY_WAIT: (SENDING,),
    SENT: (SENDING, UNKNOWN),
    DELIVERED: (SENDING, SENT, UNKNOWN),
    PLAYED: (SENDING, SENT, DELIVERED, UNKNOWN),
    CONFIRMED: (SENDING, SENT, DELIVERED, PLAYED, UNKNOWN),
    FAILED: (SENDING, SENT, RETRY_WAIT, UNKNOWN),
    EXPIRED: (PENDING, RETRY_WAIT),
    UNKNOWN: (SENDING,),
}
