"""Delivery states and the only moves allowed between them (always forward). A channel adds
moves of its own through its plugin (`ChannelPlugin.extra_moves`)."""

from __future__ import annotations

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
PLAYED = "played"
DISPLAYED = "displayed"
CONFIRMED = "confirmed"
FAILED = "failed"
RETRY_WAIT = "retry_wait"
EXPIRED = "expired"
MISSED = "missed"
UNKNOWN = "unknown"
# A delivery a person had to confirm (a station operator) that nobody confirmed before its
# validity ended: nobody knows whether it reached people.
UNCONFIRMED = "unconfirmed"

STATES = (
    PENDING,
    SENDING,
    SENT,
    DELIVERED,
    PLAYED,
    DISPLAYED,
    CONFIRMED,
    FAILED,
    RETRY_WAIT,
    EXPIRED,
    MISSED,
    UNKNOWN,
    UNCONFIRMED,
)
WAITING = (PENDING, RETRY_WAIT)
REACHED = (SENT, DELIVERED, PLAYED, DISPLAYED, CONFIRMED)
# What the far end or a person confirmed reached people (a message merely sent does not).
PROVEN = (PLAYED, CONFIRMED, DELIVERED, DISPLAYED)
FINAL = (DELIVERED, PLAYED, DISPLAYED, CONFIRMED, FAILED, EXPIRED, MISSED, UNCONFIRMED)

# target state -> states a delivery may be in to move there. Callbacks arrive out of order:
# a `sent` after `delivered` finds no allowed source and changes nothing.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    SENDING: (PENDING, RETRY_WAIT),
    PENDING: (SENDING,),  # crash recovery, channels that are safe to re-send
    RETRY_WAIT: (SENDING,),
    SENT: (SENDING, UNKNOWN),
    DELIVERED: (SENDING, SENT, UNKNOWN),
    PLAYED: (SENDING, SENT, DELIVERED, UNKNOWN),
    DISPLAYED: (SENDING, SENT, DELIVERED, UNKNOWN),
    CONFIRMED: (SENDING, SENT, DELIVERED, PLAYED, DISPLAYED, UNKNOWN),
    FAILED: (SENDING, SENT, RETRY_WAIT, UNKNOWN),
    EXPIRED: (PENDING, RETRY_WAIT),
    UNKNOWN: (SENDING,),
    # Only a channel whose deliveries wait for a person moves them here (host.expire).
    UNCONFIRMED: (SENT,),
}


# A delivery's priority (Thông tư 39/2020): its name, and the rank deliveries keep.
NORMAL, PRIORITY, EMERGENCY = "normal", "priority", "emergency"
PRIORITIES = {NORMAL: 0, PRIORITY: 1, EMERGENCY: 2}
