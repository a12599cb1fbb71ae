"""One emergency, every channel: declare, update, cancel, and its progress by reference."""

from dispatcher.emergency.declare import cancel, declare, update
from dispatcher.emergency.progress import (
    EmergencyProgress,
    ProgressRow,
    emergency_log,
    find,
    last_states,
    list_emergencies,
    progress,
)
from dispatcher.emergency.request import EmergencyRequest, parse_until

__all__ = [
    "EmergencyProgress",
    "EmergencyRequest",
    "ProgressRow",
    "cancel",
    "declare",
    "emergency_log",
    "find",
    "last_states",
    "list_emergencies",
    "parse_until",
    "progress",
    "update",
]
