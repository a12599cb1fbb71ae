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

# Further moves for one channel. Loudspeakers: `delivered` means the player has the command,
# not that anyone heard it: it can still fail (download, interruption) or expire unplayed,
# and a player's as-run record is the truth even after coso gave up on the delivery.
CHANNEL_ALLOWED_FROM: dict[str, dict[str, tuple[str, ...]]] = {
    "loudspeaker": {
        FAILED: (DELIVERED,),
        EXPIRED: (SENT, DELIVERED),
        PLAYED: (EXPIRED,),
    },
    # SMS: an `unknown` message that `coso sms reconcile` did not find at the gateway never
    # left coso, and may be sent.
    "sms": {RETRY_WAIT: (UNKNOWN,)},
}


def allowed_sql(to: str) -> str:
    """SQL condition on table `delivery`: may a delivery move to `to` from where it is?"""
    quoted = ", ".join(f"'{s}'" for s in ALLOWED_FROM[to])  # our own constants
    condition = f"delivery.state IN ({quoted})"
    for channel, extra in CHANNEL_ALLOWED_FROM.items():
        if to in extra:
            more = ", ".join(f"'{s}'" for s in extra[to])
            condition += f" OR (delivery.channel = '{channel}' AND delivery.state IN ({more}))"
    return f"({condition})"
